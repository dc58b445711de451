// Package mailtest runs an in-process SMTP server for tests of code that
// sends mail: it records what it receives and can be told to refuse
// recipients, as a real server would.
package mailtest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"sync"
	"testing"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Received is one message the server accepted.
type Received struct {
	From string
	To   []string
	Data []byte // the message as sent, headers and body
}

// Server is an SMTP server on 127.0.0.1 without TLS.
type Server struct {
	// Addr is host:port.
	Addr string

	srv *smtp.Server

	mu       sync.Mutex
	received []Received
	rcptErr  *smtp.SMTPError
	user     string
	pass     string
}

// NewServer starts a server on a free loopback port and stops it when the
// test ends.
func NewServer(t testing.TB) *Server {
	t.Helper()
	s := &Server{}
	s.srv = smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		return &session{s: s}, nil
	}))
	s.srv.Domain = "mailtest.local"
	s.srv.AllowInsecureAuth = true
	s.srv.ErrorLog = log.New(io.Discard, "", 0)

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("mailtest: listen: %v", err)
	}
	s.Addr = l.Addr().String()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.srv.Serve(l)
	}()
	t.Cleanup(func() {
		_ = s.srv.Close()
		// Close may run before Serve has registered the listener.
		_ = l.Close()
		<-done
	})
	return s
}

// URL returns the URL a mail.SMTP sender uses to reach the server.
func (s *Server) URL() string { return "smtp://" + s.Addr + "?tls=none" }

// RequireAuth makes the server demand AUTH PLAIN with user and pass before
// MAIL FROM.
func (s *Server) RequireAuth(user, pass string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.user, s.pass = user, pass
}

// RejectRecipients makes every later RCPT TO fail with code (such as 550 or
// 451), the enhanced status class.subject.detail and text.
func (s *Server) RejectRecipients(code int, enhanced [3]int, text string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rcptErr = &smtp.SMTPError{
		Code:         code,
		EnhancedCode: smtp.EnhancedCode(enhanced),
		Message:      text,
	}
}

// Received returns a copy of the messages accepted so far.
func (s *Server) Received() []Received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Received(nil), s.received...)
}

type session struct {
	s      *Server
	authed bool
	cur    Received
}

func (ss *session) AuthMechanisms() []string { return []string{sasl.Plain} }

func (ss *session) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		ss.s.mu.Lock()
		defer ss.s.mu.Unlock()
		if user != ss.s.user || pass != ss.s.pass {
			return errors.New("invalid credentials")
		}
		ss.authed = true
		return nil
	}), nil
}

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	ss.s.mu.Lock()
	needAuth := ss.s.user != ""
	ss.s.mu.Unlock()
	if needAuth && !ss.authed {
		return smtp.ErrAuthRequired
	}
	ss.cur = Received{From: from}
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.s.mu.Lock()
	rej := ss.s.rcptErr
	ss.s.mu.Unlock()
	if rej != nil {
		return rej
	}
	ss.cur.To = append(ss.cur.To, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	var b bytes.Buffer
	if _, err := io.Copy(&b, r); err != nil {
		return fmt.Errorf("read data: %w", err)
	}
	ss.cur.Data = b.Bytes()
	ss.s.mu.Lock()
	ss.s.received = append(ss.s.received, ss.cur)
	ss.s.mu.Unlock()
	ss.cur = Received{}
	return nil
}

func (ss *session) Reset() { ss.cur = Received{} }

func (ss *session) Logout() error { return nil }
