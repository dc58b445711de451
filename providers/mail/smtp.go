package mail

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"
)

// SMTPTimeout bounds connecting to the server and each command after that.
const SMTPTimeout = 10 * time.Second

// Default ports when the URL names none.
const (
	DefaultSMTPPort  = 587 // submission, with STARTTLS
	DefaultSMTPSPort = 465 // submission over implicit TLS
)

// SMTP sends mail through an SMTP server, one connection per message.
type SMTP struct {
	client *gomail.Client
	now    func() time.Time
}

// NewSMTP returns a Sender for a server named by a URL of the form
//
//	smtp://[user:pass@]host[:port][?tls=none|starttls|tls]
//	smtps://[user:pass@]host[:port]
//
// For smtp:// the default is STARTTLS when the server offers it; tls=starttls
// requires it, tls=none never starts TLS and tls=tls uses implicit TLS.
// smtps:// always uses implicit TLS. The port defaults to 587 for smtp:// and
// 465 for smtps://. User and password must be percent-encoded.
//
// With credentials, the mechanism is chosen from those the server offers;
// a connection that ended up unencrypted never offers the password in clear
// (only challenge mechanisms are used), except over tls=none to a loopback
// host, which is for local development and tests.
func NewSMTP(rawURL string) (*SMTP, error) {
	opts, host, err := parseSMTPURL(rawURL)
	if err != nil {
		return nil, err
	}
	client, err := gomail.NewClient(host, opts...)
	if err != nil {
		return nil, fmt.Errorf("new smtp sender: %w", err)
	}
	return &SMTP{client: client, now: time.Now}, nil
}

// parseSMTPURL turns rawURL into go-mail client options. Errors never repeat
// the URL, which may hold a password.
func parseSMTPURL(rawURL string) ([]gomail.Option, string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, "", errors.New("invalid smtp url: cannot be parsed")
	}
	mode, err := tlsMode(u)
	if err != nil {
		return nil, "", err
	}
	host := u.Hostname()
	if host == "" {
		return nil, "", errors.New("invalid smtp url: no host")
	}
	if u.Path != "" && u.Path != "/" {
		return nil, "", errors.New("invalid smtp url: unexpected path")
	}
	port, err := smtpPort(u, mode)
	if err != nil {
		return nil, "", err
	}

	opts := []gomail.Option{
		gomail.WithPort(port),
		gomail.WithTimeout(SMTPTimeout),
		gomail.WithTLSConfig(&tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}),
	}
	switch mode {
	case "tls":
		opts = append(opts, gomail.WithSSL())
	case "starttls":
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	case "none":
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	default:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSOpportunistic))
	}
	if u.User != nil {
		pass, _ := u.User.Password()
		auth := gomail.SMTPAuthAutoDiscover
		if mode == "none" {
			// go-mail's PLAIN refuses an unencrypted connection unless the
			// host is loopback.
			auth = gomail.SMTPAuthPlain
		}
		opts = append(opts, gomail.WithSMTPAuth(auth),
			gomail.WithUsername(u.User.Username()), gomail.WithPassword(pass))
	}
	return opts, host, nil
}

// tlsMode returns "none", "starttls", "tls" or "" (STARTTLS if offered).
func tlsMode(u *url.URL) (string, error) {
	q := u.Query()
	for k := range q {
		if k != "tls" {
			return "", fmt.Errorf("invalid smtp url: unknown parameter %q", k)
		}
	}
	mode := q.Get("tls")
	switch mode {
	case "", "none", "starttls", "tls":
	default:
		return "", fmt.Errorf("invalid smtp url: tls=%q, want none, starttls or tls", mode)
	}

	switch u.Scheme {
	case "smtp":
		return mode, nil
	case "smtps":
		if mode != "" && mode != "tls" {
			return "", fmt.Errorf("invalid smtp url: smtps:// cannot use tls=%s", mode)
		}
		return "tls", nil
	default:
		return "", fmt.Errorf("invalid smtp url: scheme %q, want smtp or smtps", u.Scheme)
	}
}

func smtpPort(u *url.URL, mode string) (int, error) {
	p := u.Port()
	if p == "" {
		if mode == "tls" {
			return DefaultSMTPSPort, nil
		}
		return DefaultSMTPPort, nil
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("invalid smtp url: port %q", p)
	}
	return n, nil
}

// Send delivers m and returns its Message-ID (see MessageID). A permanent
// refusal of a recipient returns a *RejectedError; any other failure
// (refused connection, timeout, a 4xx reply) is returned as a plain error
// the caller may retry. Errors never contain the recipients' addresses.
func (s *SMTP) Send(ctx context.Context, m Message) (string, error) {
	msg, addrs, err := build(m, s.now())
	if err != nil {
		return "", fmt.Errorf("send mail: %w", err)
	}
	err = traceSend(ctx, "smtp", func(ctx context.Context) error {
		if err := s.client.DialAndSendWithContext(ctx, msg); err != nil {
			return classify(ctx, err, addrs)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	return MessageID(m.DedupeKey), nil
}

// classify maps a go-mail error to RejectedError or a plain error, without
// the addresses go-mail puts in its messages.
func classify(ctx context.Context, err error, addrs []string) error {
	var se *gomail.SendError
	if errors.As(err, &se) && se.Reason == gomail.ErrSMTPRcptTo &&
		se.ErrorCode() >= 500 && se.ErrorCode() <= 599 {
		return &RejectedError{
			Code:         se.ErrorCode(),
			EnhancedCode: se.EnhancedStatusCode(),
			Reply:        redact(rcptReply(se), addrs),
		}
	}

	text := redact(err.Error(), addrs)
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("send mail: %s: %w", text, ctxErr)
	}
	return fmt.Errorf("send mail: %s", text)
}

// rcptReply returns the server's reply text to RCPT TO, without go-mail's
// framing, the reply code or the enhanced status code.
func rcptReply(se *gomail.SendError) string {
	s := strings.TrimPrefix(se.Error(), gomail.ErrSMTPRcptTo.String()+": ")
	if i := strings.Index(s, ", affected recipient(s): "); i >= 0 {
		s = s[:i]
	}
	s = strings.TrimPrefix(s, strconv.Itoa(se.ErrorCode())+" ")
	if u, err := strconv.Unquote(s); err == nil { // net/textproto quotes it
		s = u
	}
	if esc := se.EnhancedStatusCode(); esc != "" {
		s = strings.TrimPrefix(s, esc+" ")
	}
	return strings.TrimSpace(s)
}
