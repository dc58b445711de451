package webhooks

import (
	"context"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestIsPublic(t *testing.T) {
	t.Parallel()
	tests := []struct {
		addr   string
		public bool
	}{
		{"8.8.8.8", true},
		{"93.184.215.14", true},
		{"2606:4700:4700::1111", true},
		{"127.0.0.1", false},
		{"127.8.9.10", false},
		{"10.1.2.3", false},
		{"172.16.0.1", false},
		{"192.168.1.1", false},
		{"169.254.169.254", false},
		{"169.254.10.10", false},
		{"100.64.0.1", false},
		{"100.100.100.200", false},
		{"0.0.0.0", false},
		{"0.1.2.3", false},
		{"224.0.0.1", false},
		{"255.255.255.255", false},
		{"198.18.0.1", false},
		{"::1", false},
		{"::", false},
		{"::ffff:127.0.0.1", false},
		{"::ffff:10.0.0.1", false},
		{"::ffff:8.8.8.8", true},
		{"fe80::1", false},
		{"fe80::1%eth0", false},
		{"fd00:ec2::254", false},
		{"fc00::1", false},
		{"ff02::1", false},
		{"64:ff9b::7f00:1", false},
		{"2002:7f00:1::", false},
		{"2001:db8::1", false},
	}
	for _, tc := range tests {
		t.Run(tc.addr, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.public, isPublic(netip.MustParseAddr(tc.addr)))
		})
	}
}

func TestCheckURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		url          string
		allowPrivate bool
		want         error
	}{
		{"https", "https://hooks.example.com/in", false, nil},
		{"upper-case scheme", "HTTPS://hooks.example.com/in", false, nil},
		{"http refused", "http://hooks.example.com/in", false, ErrInsecureURL},
		{"http allowed for private use", "http://127.0.0.1:8080/in", true, nil},
		{"other scheme", "ftp://hooks.example.com/in", true, ErrInvalidURL},
		{"no host", "https:///in", false, ErrInvalidURL},
		{"relative", "/in", false, ErrInvalidURL},
		{"unparseable", "https://[::1", false, ErrInvalidURL},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := checkURL(tc.url, tc.allowPrivate)
			if tc.want == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, tc.want)
			require.True(t, IsPermanent(err))
		})
	}
}

// stubResolver answers fixed addresses per host and counts lookups.
type stubResolver struct {
	answers map[string][]string
	lookups chan string
}

func (r stubResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if r.lookups != nil {
		r.lookups <- host
	}
	var out []netip.Addr
	for _, a := range r.answers[host] {
		out = append(out, netip.MustParseAddr(a))
	}
	return out, nil
}

func TestGuardResolve(t *testing.T) {
	t.Parallel()
	res := stubResolver{answers: map[string][]string{
		"public.example.com": {"93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"},
		"mixed.example.com":  {"93.184.215.14", "127.0.0.1"},
		"mapped.example.com": {"::ffff:169.254.169.254"},
		"empty.example.com":  nil,
	}}

	got, err := guard{resolver: res}.resolve(context.Background(), "public.example.com")
	require.NoError(t, err)
	require.Len(t, got, 2)

	for _, host := range []string{"mixed.example.com", "mapped.example.com", "10.0.0.1"} {
		_, err := guard{resolver: res}.resolve(context.Background(), host)
		require.ErrorIs(t, err, ErrBlockedAddress, host)
	}

	_, err = guard{resolver: res}.resolve(context.Background(), "empty.example.com")
	require.Error(t, err)
	require.False(t, IsPermanent(err), "an empty answer may be a passing DNS fault")

	got, err = guard{resolver: res, allowPrivate: true}.resolve(context.Background(),
		"mixed.example.com")
	require.NoError(t, err)
	require.Len(t, got, 2)
}
