package webhooks

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSealSecret(t *testing.T) {
	t.Parallel()
	key := bytes.Repeat([]byte{7}, 32)
	otherKey := bytes.Repeat([]byte{8}, 32)
	const secret = "whsec_c2VjcmV0LWJ5dGVz"

	t.Run("round trip", func(t *testing.T) {
		t.Parallel()
		sealed, err := SealSecret(key, secret)
		require.NoError(t, err)
		require.True(t, strings.HasPrefix(sealed, "v1:"))
		require.NotContains(t, sealed, "c2VjcmV0")
		again, err := SealSecret(key, secret)
		require.NoError(t, err)
		require.NotEqual(t, sealed, again, "each seal uses a fresh nonce")

		opened, err := OpenSecret(key, sealed)
		require.NoError(t, err)
		require.Equal(t, secret, opened)
	})
	t.Run("wrong key", func(t *testing.T) {
		t.Parallel()
		sealed, err := SealSecret(key, secret)
		require.NoError(t, err)
		_, err = OpenSecret(otherKey, sealed)
		require.ErrorIs(t, err, ErrSealedSecret)
	})
	t.Run("tampered", func(t *testing.T) {
		t.Parallel()
		sealed, err := SealSecret(key, secret)
		require.NoError(t, err)
		raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(sealed, "v1:"))
		require.NoError(t, err)
		raw[len(raw)-1] ^= 1
		flipped := "v1:" + base64.StdEncoding.EncodeToString(raw)
		_, err = OpenSecret(key, flipped)
		require.ErrorIs(t, err, ErrSealedSecret)
	})
	t.Run("development form without a key", func(t *testing.T) {
		t.Parallel()
		sealed, err := SealSecret(nil, secret)
		require.NoError(t, err)
		require.Equal(t, "plain:"+secret, sealed)
		opened, err := OpenSecret(nil, sealed)
		require.NoError(t, err)
		require.Equal(t, secret, opened)
	})

	refusals := []struct {
		name   string
		key    []byte
		sealed string
		want   error
	}{
		{"plain while a key is set", key, "plain:" + secret, ErrPlainSecret},
		{"sealed without a key", nil, "v1:AAAA", ErrSecretKey},
		{"short key", []byte("too-short"), "v1:AAAA", ErrSecretKey},
		{"unknown format", key, secret, ErrSealedSecret},
		{"not base64", key, "v1:%%%", ErrSealedSecret},
		{"truncated", key, "v1:AAAA", ErrSealedSecret},
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := OpenSecret(tc.key, tc.sealed)
			require.ErrorIs(t, err, tc.want)
			require.Empty(t, got)
		})
	}

	t.Run("seal refuses", func(t *testing.T) {
		t.Parallel()
		_, err := SealSecret([]byte("short"), secret)
		require.ErrorIs(t, err, ErrSecretKey)
		_, err = SealSecret(key, "")
		require.Error(t, err)
	})
}
