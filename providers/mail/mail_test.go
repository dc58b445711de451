package mail

import (
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestMessageID(t *testing.T) {
	t.Parallel()

	// dot-atom-text "@" dot-atom-text (RFC 5322 msg-id), restricted further
	// to the characters MessageID writes.
	valid := regexp.MustCompile(`^[A-Za-z0-9_-]+\.[0-9a-f]{16}@millrace$`)

	keys := []string{
		"invite:3f2e1d0c-9b8a-4776-8554-433221100fed:1",
		"invite:3f2e1d0c-9b8a-4776-8554-433221100fed:2",
		"invite-3f2e1d0c-9b8a-4776-8554-433221100fed-1",
		"a b/c<d>@e",
		"é",
		string(make([]byte, 300)),
	}
	seen := map[string]string{}
	for _, k := range keys {
		id := MessageID(k)
		require.Regexp(t, valid, id, "key %q", k)
		require.Equal(t, id, MessageID(k), "deterministic")
		require.LessOrEqual(t, len(id), 100)
		if other, ok := seen[id]; ok {
			t.Fatalf("keys %q and %q share id %s", k, other, id)
		}
		seen[id] = k
	}
}

func TestRedact(t *testing.T) {
	t.Parallel()

	got := redact("550 <Bob@Example.com> unknown; bob@example.com again",
		[]string{"bob@example.com", ""})
	require.Equal(t, "550 <[recipient]> unknown; [recipient] again", got)
}

func TestValidate(t *testing.T) {
	t.Parallel()

	ok := testMessage("k")
	tests := map[string]func(m *Message){
		"no sender":     func(m *Message) { m.From = " " },
		"no recipient":  func(m *Message) { m.To = nil },
		"no dedupe key": func(m *Message) { m.DedupeKey = "" },
		"no body":       func(m *Message) { m.Text, m.HTML = "", "" },
	}
	require.NoError(t, validate(ok))
	for name, mutate := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			m := testMessage("k")
			mutate(&m)
			err := validate(m)
			require.ErrorContains(t, err, name)
		})
	}
}
