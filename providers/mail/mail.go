// Package mail sends Millrace's transactional email: over SMTP when a server
// is configured, otherwise as .eml files in a directory for development.
package mail

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// Message is one email.
type Message struct {
	From    string
	To      []string
	Subject string
	Text    string
	HTML    string
	// DedupeKey identifies this send across retries; it becomes the
	// Message-ID, so a receiving system can drop a duplicate.
	DedupeKey string
}

// Sender delivers email and returns the provider's message id.
type Sender interface {
	Send(ctx context.Context, m Message) (string, error)
}

// MessageIDDomain is the right-hand side of every Message-ID Millrace writes.
const MessageIDDomain = "millrace"

// MessageID returns the Message-ID, without angle brackets, that a message
// with dedupeKey carries. It is a pure function of the key, so every retry of
// the same send carries the same id and a receiving system (or a person
// reading headers) can recognise a redelivery. The readable part keeps the
// key's letters and digits; the hash suffix keeps two keys that read alike
// apart.
func MessageID(dedupeKey string) string {
	return localPart(dedupeKey) + "@" + MessageIDDomain
}

// localPart is the left-hand side of MessageID, also used in file names.
func localPart(dedupeKey string) string {
	const maxReadable = 64

	var b strings.Builder
	for _, r := range dedupeKey {
		if b.Len() >= maxReadable {
			break
		}
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	sum := sha256.Sum256([]byte(dedupeKey))

	return b.String() + "." + hex.EncodeToString(sum[:8])
}

// RejectedError reports that the receiving server refused a recipient for
// good (an SMTP 5xx reply to RCPT TO): retrying the same address cannot
// succeed. It never carries the address itself.
type RejectedError struct {
	// Code is the SMTP reply code, 500 to 599.
	Code int
	// EnhancedCode is the RFC 3463 status, such as "5.1.1", when the server
	// sent one; "" otherwise.
	EnhancedCode string
	// Reply is the server's text with every recipient address removed.
	Reply string
}

func (e *RejectedError) Error() string {
	s := fmt.Sprintf("recipient rejected: %d", e.Code)
	if e.EnhancedCode != "" {
		s += " " + e.EnhancedCode
	}
	if e.Reply != "" {
		s += ": " + e.Reply
	}
	return s
}

// validate reports what makes m unsendable.
func validate(m Message) error {
	var errs []error
	if strings.TrimSpace(m.From) == "" {
		errs = append(errs, errors.New("no sender"))
	}
	if len(m.To) == 0 {
		errs = append(errs, errors.New("no recipient"))
	}
	if m.DedupeKey == "" {
		errs = append(errs, errors.New("no dedupe key"))
	}
	if m.Text == "" && m.HTML == "" {
		errs = append(errs, errors.New("no body"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid message: %w", err)
	}
	return nil
}

// redact replaces every occurrence of the recipients' addresses in s, in
// any ASCII letter case, so that provider errors can be logged and stored.
func redact(s string, addrs []string) string {
	const mask = "[recipient]"
	for _, a := range addrs {
		a = lowerASCII(strings.TrimSpace(a))
		if a == "" {
			continue
		}
		for {
			i := strings.Index(lowerASCII(s), a)
			if i < 0 {
				break
			}
			s = s[:i] + mask + s[i+len(a):]
		}
	}
	return s
}

// lowerASCII lowers A to Z only, so byte offsets stay those of s.
func lowerASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
