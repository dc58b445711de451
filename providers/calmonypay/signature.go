// Package calmonypay speaks to Calmony Pay, the platform's card processor: a
// Stripe-shaped REST client with retry classification and idempotency keys,
// the webhook signature check, and the decoder of both event shapes Calmony
// sends. Amounts are integer pence throughout.
package calmonypay

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// SignatureHeader is the header carrying a webhook's signature.
const SignatureHeader = "Calmony-Signature"

// SignatureTolerance is how far a signature's timestamp may be from now,
// either way.
const SignatureTolerance = 5 * time.Minute

// Signature errors. Every one of them means 401 with nothing stored.
var (
	ErrNoSignature       = errors.New("signature header missing")
	ErrMalformedHeader   = errors.New("signature header malformed")
	ErrStaleSignature    = errors.New("signature timestamp outside tolerance")
	ErrSignatureMismatch = errors.New("no signature matches")
)

// ParsedSignature is a decoded Calmony-Signature header.
type ParsedSignature struct {
	TimestampMs int64
	V1          [][]byte
}

// ParseSignature splits header on commas, then each part on its first '='.
// It requires one t (unix milliseconds) and at least one hex v1; other
// schemes are ignored.
func ParseSignature(header string) (ParsedSignature, error) {
	var p ParsedSignature
	if strings.TrimSpace(header) == "" {
		return p, ErrNoSignature
	}
	seenT := false
	for _, part := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			continue
		}
		switch k {
		case "t":
			ms, err := strconv.ParseInt(v, 10, 64)
			if err != nil || ms <= 0 || seenT {
				return ParsedSignature{}, ErrMalformedHeader
			}
			p.TimestampMs, seenT = ms, true
		case "v1":
			sig, err := hex.DecodeString(v)
			if err != nil || len(sig) != sha256.Size {
				continue
			}
			p.V1 = append(p.V1, sig)
		}
	}
	if !seenT || len(p.V1) == 0 {
		return ParsedSignature{}, ErrMalformedHeader
	}
	return p, nil
}

// Verify checks header against body: the timestamp within tolerance of now
// and any v1 equal, in constant time, to HMAC-SHA256 over "<t>.<body>" under
// any of secrets (two during a rotation).
func Verify(header string, body []byte, secrets []string, now time.Time) error {
	p, err := ParseSignature(header)
	if err != nil {
		return err
	}
	skew := now.UnixMilli() - p.TimestampMs
	if skew > SignatureTolerance.Milliseconds() || -skew > SignatureTolerance.Milliseconds() {
		return ErrStaleSignature
	}
	for _, secret := range secrets {
		if secret == "" {
			continue
		}
		want := mac(secret, p.TimestampMs, body)
		for _, got := range p.V1 {
			if hmac.Equal(want, got) {
				return nil
			}
		}
	}
	return ErrSignatureMismatch
}

// Sign returns a Calmony-Signature header for body at t under secret, as
// Calmony Pay writes it. Tests and the fake provider use it.
func Sign(secret string, t time.Time, body []byte) string {
	ms := t.UnixMilli()
	return fmt.Sprintf("t=%d,v1=%s", ms, hex.EncodeToString(mac(secret, ms, body)))
}

func mac(secret string, ms int64, body []byte) []byte {
	h := hmac.New(sha256.New, []byte(secret))
	h.Write([]byte(strconv.FormatInt(ms, 10)))
	h.Write([]byte{'.'})
	h.Write(body)
	return h.Sum(nil)
}
