package schemas

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestEveryTopicHasPassingAndFailingExamples(t *testing.T) {
	t.Parallel()
	reg := Default()
	require.NotEmpty(t, reg.Topics())
	for _, topic := range reg.Topics() {
		t.Run(topic, func(t *testing.T) {
			t.Parallel()
			exs, err := Examples(topic)
			require.NoError(t, err)
			var valid, invalid int
			for _, ex := range exs {
				err := reg.Validate(topic, ex.Payload)
				if ex.Valid {
					valid++
					require.NoError(t, err, ex.Name)
				} else {
					invalid++
					require.Error(t, err, ex.Name)
				}
			}
			require.Positive(t, valid, "a valid example")
			if topic != "platform.poison" { // anything goes on the poison queue
				require.Positive(t, invalid, "an invalid example")
			}
		})
	}
}

func TestValidateErrors(t *testing.T) {
	t.Parallel()
	reg := Default()
	err := reg.Validate("no.such.topic", []byte(`{}`))
	require.ErrorIs(t, err, ErrUnknownTopic)

	err = reg.Validate("platform.user.invited", []byte(`{"email":`))
	require.ErrorIs(t, err, ErrMalformedJSON)

	err = reg.Validate("platform.user.invited", []byte(`{"email":"x","role":"god"}`))
	var verr *ValidationError
	require.True(t, errors.As(err, &verr))
	paths := map[string]bool{}
	for _, p := range verr.Problems {
		paths[p.Path] = true
	}
	require.True(t, paths["/email"], "%v", verr.Problems)
	require.True(t, paths["/role"], "%v", verr.Problems)
}

func TestValidateRemembersOnlyPassingPayloads(t *testing.T) {
	t.Parallel()
	reg, err := Load()
	require.NoError(t, err)
	good := []byte(`{"scheduled_for":"2026-12-03T03:30:00Z","as_of":"2026-12-03"}`)
	bad := []byte(`{"scheduled_for":"yesterday","as_of":"2026-12-03"}`)
	for range 3 {
		require.NoError(t, reg.Validate("platform.audit.cleanup.tick", good))
		require.Error(t, reg.Validate("platform.audit.cleanup.tick", bad))
	}
	// The same bytes on another topic are validated against that topic.
	require.Error(t, reg.Validate("platform.user.invited", good))
}
