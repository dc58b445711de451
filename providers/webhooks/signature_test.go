package webhooks

import (
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestSign(t *testing.T) {
	t.Parallel()
	// Expected values were computed outside Go, with Python's hmac and
	// base64 modules; the first is also the Standard Webhooks example.
	tests := []struct {
		name, secret, id string
		unix             int64
		body, want       string
	}{
		{
			name:   "whsec secret",
			secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
			id:     "msg_p5jXN8AQM9LWM0D4loKWxJek",
			unix:   1614265330,
			body:   `{"test": 2432232314}`,
			want:   "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
		},
		{
			name:   "raw secret",
			secret: "raw-secret",
			id:     "9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b",
			unix:   1796292000,
			body:   `{"id":"x"}`,
			want:   "v1,ZsHy+2/0DN9FMmLA7r9S0fDCFDM8MA/yea0KYk7kBxA=",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := Sign(tc.secret, tc.id, time.Unix(tc.unix, 0), []byte(tc.body))
			require.Equal(t, tc.want, got)
		})
	}
}

func TestDecodeSecret(t *testing.T) {
	t.Parallel()
	key, err := DecodeSecret("whsec_" + base64.StdEncoding.EncodeToString([]byte("k3y")))
	require.NoError(t, err)
	require.Equal(t, []byte("k3y"), key)

	key, err = DecodeSecret("plain-bytes")
	require.NoError(t, err)
	require.Equal(t, []byte("plain-bytes"), key)

	for _, bad := range []string{"", "whsec_", "whsec_!!not base64!!"} {
		_, err := DecodeSecret(bad)
		require.ErrorIs(t, err, ErrInvalidRequest, bad)
	}
}

func TestGenerateSecret(t *testing.T) {
	t.Parallel()
	a, err := GenerateSecret()
	require.NoError(t, err)
	b, err := GenerateSecret()
	require.NoError(t, err)
	require.NotEqual(t, a, b)
	require.True(t, strings.HasPrefix(a, "whsec_"))
	key, err := DecodeSecret(a)
	require.NoError(t, err)
	require.Len(t, key, 32)
}

func TestVerify(t *testing.T) {
	t.Parallel()
	const (
		oldSecret = "whsec_b2xkLXNlY3JldC1ieXRlcw=="
		newSecret = "whsec_bmV3LXNlY3JldC1ieXRlcw=="
		id        = "evt-1"
	)
	now := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	body := []byte(`{"id":"evt-1"}`)
	headers := func(ts time.Time, secrets ...string) http.Header {
		sig, err := signatureHeader(secrets, id, ts, body)
		require.NoError(t, err)
		h := http.Header{}
		h.Set(HeaderID, id)
		h.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
		h.Set(HeaderSignature, sig)
		return h
	}
	without := func(h http.Header, key string) http.Header { h.Del(key); return h }
	withValue := func(h http.Header, key, v string) http.Header { h.Set(key, v); return h }

	tests := []struct {
		name    string
		secrets []string
		headers http.Header
		body    []byte
		want    error
	}{
		{"current secret", []string{newSecret}, headers(now, newSecret), body, nil},
		{"rotation, receiver still on old", []string{oldSecret},
			headers(now, newSecret, oldSecret), body, nil},
		{"rotation, receiver already on new", []string{newSecret},
			headers(now, newSecret, oldSecret), body, nil},
		{"receiver holds both", []string{oldSecret, newSecret}, headers(now, oldSecret), body, nil},
		{"within tolerance", []string{newSecret},
			headers(now.Add(-4*time.Minute), newSecret), body, nil},
		{"stale", []string{newSecret}, headers(now.Add(-6*time.Minute), newSecret), body,
			ErrStaleTimestamp},
		{"from the future", []string{newSecret}, headers(now.Add(6*time.Minute), newSecret), body,
			ErrStaleTimestamp},
		{"forged with another secret", []string{newSecret}, headers(now, oldSecret), body,
			ErrInvalidSignature},
		{"tampered body", []string{newSecret}, headers(now, newSecret), []byte(`{"id":"evt-2"}`),
			ErrInvalidSignature},
		{"unknown scheme only", []string{newSecret},
			withValue(headers(now, newSecret), HeaderSignature, "v2,abc"), body,
			ErrInvalidSignature},
		{"missing signature", []string{newSecret},
			without(headers(now, newSecret), HeaderSignature), body, ErrMalformedHeaders},
		{"missing id", []string{newSecret}, without(headers(now, newSecret), HeaderID), body,
			ErrMalformedHeaders},
		{"timestamp not seconds", []string{newSecret},
			withValue(headers(now, newSecret), HeaderTimestamp, now.Format(time.RFC3339)), body,
			ErrMalformedHeaders},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := Verify(tc.secrets, tc.headers, tc.body, now, 0)
			if tc.want == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, tc.want)
		})
	}
}

func TestSignatureHeaderNeedsASecret(t *testing.T) {
	t.Parallel()
	_, err := signatureHeader(nil, "evt-1", time.Unix(0, 0), nil)
	require.ErrorIs(t, err, ErrInvalidRequest)
	_, err = signatureHeader([]string{"whsec_%%%"}, "evt-1", time.Unix(0, 0), nil)
	require.ErrorIs(t, err, ErrInvalidRequest)
}
