package mail

import (
	"bytes"
	"io"
	"mime"
	"mime/multipart"
	netmail "net/mail"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// parsed is a message read back the way a mail client would.
type parsed struct {
	Header netmail.Header
	Text   string
	HTML   string
}

// parse reads raw as RFC 5322 and collects its text and HTML parts.
func parse(t *testing.T, raw []byte) parsed {
	t.Helper()
	m, err := netmail.ReadMessage(bytes.NewReader(raw))
	require.NoError(t, err)
	out := parsed{Header: m.Header}

	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	require.NoError(t, err)
	require.Equal(t, "multipart/alternative", mt)
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		body, err := io.ReadAll(p)
		require.NoError(t, err)
		ct := p.Header.Get("Content-Type")
		switch {
		case strings.HasPrefix(ct, "text/plain"):
			out.Text = string(body)
		case strings.HasPrefix(ct, "text/html"):
			out.HTML = string(body)
		default:
			t.Fatalf("unexpected part %q", ct)
		}
	}
	return out
}

func testMessage(key string) Message {
	return Message{
		From:      "Millrace <no-reply@millrace.local>",
		To:        []string{"Bob Example <bob@example.com>"},
		Subject:   "You are invited",
		Text:      "Hello Bob,\nplease join.",
		HTML:      "<p>Hello Bob,</p><p>please join.</p>",
		DedupeKey: key,
	}
}
