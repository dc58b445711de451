package mail

import (
	"fmt"
	netmail "net/mail"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"
)

// userAgent replaces go-mail's default, which names the library's site.
const userAgent = "Millrace"

// build turns m into a go-mail message: text/plain, with a text/html
// alternative when m has HTML, and the Message-ID derived from the dedupe
// key. It also returns the bare recipient addresses, which errors must not
// repeat.
func build(m Message, now time.Time) (*gomail.Msg, []string, error) {
	if err := validate(m); err != nil {
		return nil, nil, err
	}
	msg := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	if err := msg.From(m.From); err != nil {
		return nil, nil, fmt.Errorf("invalid message: sender: %w", err)
	}
	rcpts, err := recipients(m.To)
	if err != nil {
		return nil, nil, err
	}
	msg.ToMailAddress(rcpts...)
	msg.Subject(oneLine(m.Subject))
	msg.SetMessageIDWithValue(MessageID(m.DedupeKey))
	msg.SetDateWithValue(now)
	msg.SetUserAgent(userAgent)

	switch {
	case m.Text != "" && m.HTML != "":
		msg.SetBodyString(gomail.TypeTextPlain, m.Text)
		msg.AddAlternativeString(gomail.TypeTextHTML, m.HTML)
	case m.Text != "":
		msg.SetBodyString(gomail.TypeTextPlain, m.Text)
	default:
		msg.SetBodyString(gomail.TypeTextHTML, m.HTML)
	}

	addrs := make([]string, 0, 2*len(m.To))
	for i, a := range rcpts {
		addrs = append(addrs, a.Address, m.To[i])
	}
	return msg, addrs, nil
}

// recipients parses each of to. Parse errors do not quote the address.
func recipients(to []string) ([]*netmail.Address, error) {
	out := make([]*netmail.Address, 0, len(to))
	for i, s := range to {
		a, err := netmail.ParseAddress(s)
		if err != nil {
			return nil, fmt.Errorf("invalid message: recipient %d is not an address", i+1)
		}
		out = append(out, a)
	}
	return out, nil
}

// oneLine keeps a header value on one line whatever its source.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
