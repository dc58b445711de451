package webhooks

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The Standard Webhooks headers.
const (
	HeaderID        = "Webhook-Id"
	HeaderTimestamp = "Webhook-Timestamp"
	HeaderSignature = "Webhook-Signature"
)

// DefaultTolerance is how far a receiver should let Webhook-Timestamp stray
// from its own clock, either way.
const DefaultTolerance = 5 * time.Minute

// secretPrefix marks a secret whose key bytes are base64 encoded.
const secretPrefix = "whsec_"

// Errors returned by Verify.
var (
	ErrMalformedHeaders = errors.New("webhook headers missing or malformed")
	ErrStaleTimestamp   = errors.New("webhook timestamp outside tolerance")
	ErrInvalidSignature = errors.New("webhook signature does not match")
)

// GenerateSecret returns a new random signing secret in the whsec_ form.
func GenerateSecret() (string, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return "", fmt.Errorf("generate secret: %w", err)
	}
	return secretPrefix + base64.StdEncoding.EncodeToString(key), nil
}

// DecodeSecret returns the HMAC key of a signing secret: the decoded base64
// after "whsec_", or the bytes of any other string.
func DecodeSecret(secret string) ([]byte, error) {
	rest, ok := strings.CutPrefix(secret, secretPrefix)
	if !ok {
		if secret == "" {
			return nil, fmt.Errorf("%w: empty secret", ErrInvalidRequest)
		}
		return []byte(secret), nil
	}
	key, err := base64.StdEncoding.DecodeString(rest)
	if err != nil {
		key, err = base64.RawStdEncoding.DecodeString(rest)
	}
	if err != nil || len(key) == 0 {
		return nil, fmt.Errorf("%w: whsec_ secret is not base64", ErrInvalidRequest)
	}
	return key, nil
}

// Sign returns the Webhook-Signature entry "v1,<base64 HMAC-SHA256>" for one
// secret, over id + "." + unix seconds of ts + "." + body. A whsec_ secret
// whose base64 does not decode signs with its bytes as given; DecodeSecret
// tells a caller that cares.
func Sign(secret, id string, ts time.Time, body []byte) string {
	key, err := DecodeSecret(secret)
	if err != nil {
		key = []byte(secret)
	}
	return sign(key, id, ts.Unix(), body)
}

func sign(key []byte, id string, unix int64, body []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id))
	mac.Write([]byte{'.'})
	mac.Write(strconv.AppendInt(nil, unix, 10))
	mac.Write([]byte{'.'})
	mac.Write(body)

	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// signatureHeader signs with every secret and joins the entries with
// spaces, so a receiver holding either the old or the new secret during a
// rotation accepts the request.
func signatureHeader(secrets []string, id string, ts time.Time, body []byte) (string, error) {
	if len(secrets) == 0 {
		return "", fmt.Errorf("%w: no signing secret", ErrInvalidRequest)
	}
	sigs := make([]string, len(secrets))
	for i, s := range secrets {
		key, err := DecodeSecret(s)
		if err != nil {
			return "", err
		}
		sigs[i] = sign(key, id, ts.Unix(), body)
	}
	return strings.Join(sigs, " "), nil
}

// Verify checks a received webhook as a customer's receiver should: the
// three headers are present, the timestamp is within tolerance of now
// (DefaultTolerance when tolerance is zero), and one v1 signature matches
// one of secrets. Comparisons are constant time.
func Verify(secrets []string, headers http.Header, body []byte, now time.Time,
	tolerance time.Duration) error {
	id := headers.Get(HeaderID)
	rawTS := headers.Get(HeaderTimestamp)
	sigs := strings.Fields(headers.Get(HeaderSignature))
	if id == "" || rawTS == "" || len(sigs) == 0 {
		return ErrMalformedHeaders
	}
	unix, err := strconv.ParseInt(rawTS, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: timestamp is not unix seconds", ErrMalformedHeaders)
	}
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	if d := now.Sub(time.Unix(unix, 0)); d > tolerance || d < -tolerance {
		return ErrStaleTimestamp
	}
	for _, s := range secrets {
		key, err := DecodeSecret(s)
		if err != nil {
			return fmt.Errorf("verify webhook: %w", err)
		}
		want := []byte(sign(key, id, unix, body))
		for _, got := range sigs {
			if hmac.Equal([]byte(got), want) {
				return nil
			}
		}
	}

	return ErrInvalidSignature
}
