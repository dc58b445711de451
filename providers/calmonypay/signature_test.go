package calmonypay

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestVerify(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	body := []byte(`{"id":"evt_1","type":"invoice.paid"}`)
	good := Sign("whsec_new", now, body)
	ms := now.UnixMilli()
	tests := []struct {
		name    string
		header  string
		secrets []string
		want    error
	}{
		{"valid", good, []string{"whsec_new"}, nil},
		{"second secret during rotation", good, []string{"whsec_old", "whsec_new"}, nil},
		{"one of several v1", fmt.Sprintf("t=%d,v1=%064x,%s", ms, 1,
			good[len("t=1764752400000,"):]), []string{"whsec_new"}, nil},
		{"unknown scheme ignored", good + ",v0=abc", []string{"whsec_new"}, nil},
		{"wrong secret", good, []string{"whsec_other"}, ErrSignatureMismatch},
		{"missing header", "", []string{"whsec_new"}, ErrNoSignature},
		{"no t", "v1=" + good[len("t=1764752400000,v1="):], []string{"whsec_new"},
			ErrMalformedHeader},
		{"no v1", fmt.Sprintf("t=%d", ms), []string{"whsec_new"}, ErrMalformedHeader},
		{"seconds not milliseconds", Sign("whsec_new", now, body)[0:2] +
			fmt.Sprint(now.Unix()) + good[len("t=1764752400000"):], []string{"whsec_new"},
			ErrStaleSignature},
		{"too old", Sign("whsec_new", now.Add(-5*time.Minute-time.Millisecond), body),
			[]string{"whsec_new"}, ErrStaleSignature},
		{"too new", Sign("whsec_new", now.Add(5*time.Minute+time.Millisecond), body),
			[]string{"whsec_new"}, ErrStaleSignature},
		{"edge of tolerance", Sign("whsec_new", now.Add(-5*time.Minute), body),
			[]string{"whsec_new"}, nil},
		{"no secrets", good, nil, ErrSignatureMismatch},
		{"whole header as hmac (old SDK bug)", "v1=" + good, []string{"whsec_new"},
			ErrMalformedHeader},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := Verify(tt.header, body, tt.secrets, now)
			if tt.want == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, tt.want)
		})
	}
}

func TestVerifyRejectsAlteredBody(t *testing.T) {
	t.Parallel()
	now := time.Now()
	h := Sign("s", now, []byte(`{"amount":100}`))
	require.ErrorIs(t, Verify(h, []byte(`{"amount":900}`), []string{"s"}, now),
		ErrSignatureMismatch)
}

func FuzzParseSignature(f *testing.F) {
	f.Add("t=1764752400000,v1=" + fmt.Sprintf("%064x", 7))
	f.Add("t=1,v1=zz,v0=aa")
	f.Add(",,,=")
	f.Add("t=-5,v1=")
	f.Fuzz(func(t *testing.T, header string) {
		p, err := ParseSignature(header)
		if err != nil {
			return
		}
		if p.TimestampMs <= 0 || len(p.V1) == 0 {
			t.Fatalf("accepted %q without t or v1", header)
		}
		for _, v := range p.V1 {
			if len(v) != 32 {
				t.Fatalf("accepted a v1 of %d bytes", len(v))
			}
		}
	})
}
