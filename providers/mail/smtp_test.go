package mail

import (
	"context"
	"errors"
	"net"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/millrace/millrace/providers/mail/mailtest"
)

func TestNewSMTP(t *testing.T) {
	t.Parallel()

	valid := []string{
		"smtp://mail.example.com",
		"smtp://mail.example.com:25",
		"smtp://user:p%40ss@mail.example.com:587?tls=starttls",
		"smtp://127.0.0.1:2525?tls=none",
		"smtp://mail.example.com:2525?tls=tls",
		"smtps://user:secret@mail.example.com",
		"smtps://mail.example.com:465?tls=tls",
	}
	for _, u := range valid {
		t.Run(u, func(t *testing.T) {
			t.Parallel()
			s, err := NewSMTP(u)
			require.NoError(t, err)
			require.NotNil(t, s)
		})
	}

	invalid := map[string]string{
		"http://user:secret@mail.example.com":   "scheme",
		"smtp://user:secret@":                   "no host",
		"smtp://user:secret@mail.example.com:0": "port",
		"smtp://mail.example.com:99999":         "port",
		"smtp://mail.example.com:x":             "cannot be parsed",
		"smtp://mail.example.com?tls=maybe":     "tls=",
		"smtp://mail.example.com?tsl=none":      "unknown parameter",
		"smtps://mail.example.com?tls=none":     "smtps://",
		"smtp://mail.example.com/inbox":         "path",
		"::not a url":                           "cannot be parsed",
	}
	for u, want := range invalid {
		t.Run(u, func(t *testing.T) {
			t.Parallel()
			s, err := NewSMTP(u)
			require.Nil(t, s)
			require.ErrorContains(t, err, "invalid smtp url")
			require.ErrorContains(t, err, want)
			require.NotContains(t, err.Error(), "secret", "the password must not leak")
		})
	}
}

func TestSMTPSend(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	srv := mailtest.NewServer(t)
	srv.RequireAuth("millrace", "s3cret")
	s, err := NewSMTP("smtp://millrace:s3cret@" + srv.Addr + "?tls=none")
	require.NoError(t, err)

	key := "invite:3f2e1d0c-9b8a-4776-8554-433221100fed:1"
	id, err := s.Send(ctx, testMessage(key))
	require.NoError(t, err)
	require.Equal(t, MessageID(key), id)

	got := srv.Received()
	require.Len(t, got, 1)
	require.Equal(t, "no-reply@millrace.local", got[0].From)
	require.Equal(t, []string{"bob@example.com"}, got[0].To)

	p := parse(t, got[0].Data)
	require.Equal(t, "<"+id+">", p.Header.Get("Message-ID"))
	require.Equal(t, "You are invited", p.Header.Get("Subject"))
	require.Contains(t, p.Header.Get("To"), "bob@example.com")
	require.Contains(t, p.Header.Get("From"), "no-reply@millrace.local")
	require.Contains(t, p.Text, "Hello Bob,\r\nplease join.")
	require.Contains(t, p.HTML, "<p>Hello Bob,</p>")
}

func TestSMTPSendFailures(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name     string
		code     int
		enhanced [3]int
		rejected bool
	}{
		{name: "550 mailbox unknown is a rejection", code: 550, enhanced: [3]int{5, 1, 1},
			rejected: true},
		{name: "553 bad address is a rejection", code: 553, enhanced: [3]int{5, 1, 3},
			rejected: true},
		{name: "451 try later is retryable", code: 451, enhanced: [3]int{4, 7, 1}},
		{name: "452 mailbox full is retryable", code: 452, enhanced: [3]int{4, 2, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := mailtest.NewServer(t)
			srv.RejectRecipients(tt.code, tt.enhanced, "<Bob@Example.com> says no")
			s, err := NewSMTP(srv.URL())
			require.NoError(t, err)

			id, err := s.Send(context.Background(), testMessage("k"))
			require.Error(t, err)
			require.Empty(t, id)
			require.Empty(t, srv.Received())
			require.NotContains(t, lowerASCII(err.Error()), "bob@example.com")

			var rej *RejectedError
			require.Equal(t, tt.rejected, errors.As(err, &rej), "error: %v", err)
			if tt.rejected {
				require.Equal(t, tt.code, rej.Code)
				require.Equal(t, "5.1."+string(rune('0'+tt.enhanced[2])), rej.EnhancedCode)
				require.Equal(t, "<[recipient]> says no", rej.Reply)
			}
		})
	}
}

func TestSMTPSendServerDown(t *testing.T) {
	t.Parallel()

	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())

	s, err := NewSMTP("smtp://" + addr + "?tls=none")
	require.NoError(t, err)
	_, err = s.Send(context.Background(), testMessage("k"))
	require.Error(t, err)
	var rej *RejectedError
	require.False(t, errors.As(err, &rej))
}

func TestSMTPSendWrongPassword(t *testing.T) {
	t.Parallel()

	srv := mailtest.NewServer(t)
	srv.RequireAuth("millrace", "right")
	s, err := NewSMTP("smtp://millrace:wrong@" + srv.Addr + "?tls=none")
	require.NoError(t, err)

	_, err = s.Send(context.Background(), testMessage("k"))
	require.Error(t, err)
	require.NotContains(t, err.Error(), "wrong")
	var rej *RejectedError
	require.False(t, errors.As(err, &rej), "a sender problem is not the recipient's")
	require.Empty(t, srv.Received())
}

func TestSMTPSendInvalidMessage(t *testing.T) {
	t.Parallel()

	srv := mailtest.NewServer(t)
	s, err := NewSMTP(srv.URL())
	require.NoError(t, err)

	m := testMessage("")
	m.To = []string{"not an address"}
	_, err = s.Send(context.Background(), m)
	require.ErrorContains(t, err, "no dedupe key")
	require.Empty(t, srv.Received())

	m = testMessage("k")
	m.To = []string{"not an address"}
	_, err = s.Send(context.Background(), m)
	require.ErrorContains(t, err, "recipient 1 is not an address")
	require.NotContains(t, err.Error(), "not an address>")
	require.Empty(t, srv.Received())
}
