package webhooks

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var signedAt = time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)

const testSecret = "whsec_dGVzdC1zaWduaW5nLXNlY3JldA=="

func testRequest(url string) Request {
	return Request{
		URL:       url,
		ID:        "9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b",
		Timestamp: signedAt,
		Body:      []byte(`{"id":"9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b"}`),
		Secrets:   []string{testSecret},
	}
}

// received is what a test endpoint saw of one request.
type received struct {
	header http.Header
	body   []byte
	host   string
}

// endpoint starts a server that records each request and answers status.
func endpoint(t *testing.T, status int) (*httptest.Server, chan received) {
	t.Helper()
	got := make(chan received, 8)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got <- received{header: r.Header.Clone(), body: body, host: r.Host}
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	return srv, got
}

func TestDeliverSignsAndPosts(t *testing.T) {
	t.Parallel()
	srv, got := endpoint(t, http.StatusNoContent)
	c := NewClient(Config{AllowPrivate: true})

	req := testRequest(srv.URL + "/hooks")
	req.Secrets = []string{testSecret, "previous-raw-secret"}
	resp, err := c.Deliver(context.Background(), req)
	require.NoError(t, err)
	require.Equal(t, http.StatusNoContent, resp.StatusCode)

	r := <-got
	require.Equal(t, req.Body, r.body)
	require.Equal(t, "application/json", r.header.Get("Content-Type"))
	require.Equal(t, "Millrace-Webhooks/1", r.header.Get("User-Agent"))
	require.Equal(t, req.ID, r.header.Get("Webhook-Id"))
	require.Equal(t, "1796292000", r.header.Get("Webhook-Timestamp"))
	require.Len(t, strings.Fields(r.header.Get("Webhook-Signature")), 2)
	for _, s := range req.Secrets {
		require.NoError(t, Verify([]string{s}, r.header, r.body, signedAt, 0))
	}
}

func TestDeliverRefusesNonPublicTargets(t *testing.T) {
	t.Parallel()
	var conns atomic.Int32
	ok := func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }
	srv := httptest.NewUnstartedServer(http.HandlerFunc(ok))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	_, port, err := net.SplitHostPort(srv.Listener.Addr().String())
	require.NoError(t, err)

	res := stubResolver{answers: map[string][]string{
		"rebind.example.com": {"93.184.215.14", "127.0.0.1"},
	}}
	c := NewClient(Config{Timeout: 2 * time.Second, Resolver: res})
	system := NewClient(Config{Timeout: 2 * time.Second})

	tests := []struct {
		name   string
		client *Client
		url    string
		want   error
	}{
		{"loopback", c, "https://127.0.0.1:" + port + "/", ErrBlockedAddress},
		{"private 10/8", c, "https://10.1.2.3/", ErrBlockedAddress},
		{"private 192.168/16", c, "https://192.168.1.1/", ErrBlockedAddress},
		{"metadata service", c, "https://169.254.169.254/latest/meta-data/", ErrBlockedAddress},
		{"IPv6 loopback", c, "https://[::1]:" + port + "/", ErrBlockedAddress},
		{"IPv4-mapped loopback", c, "https://[::ffff:127.0.0.1]:" + port + "/", ErrBlockedAddress},
		{"name resolving to loopback", system, "https://localhost:" + port + "/",
			ErrBlockedAddress},
		{"name with one private answer", c, "https://rebind.example.com:" + port + "/",
			ErrBlockedAddress},
		{"plain http", c, "http://hooks.example.com/", ErrInsecureURL},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := tc.client.Deliver(context.Background(), testRequest(tc.url))
			require.ErrorIs(t, err, tc.want)
			require.True(t, IsPermanent(err))
			require.Zero(t, resp.StatusCode)
		})
	}
	require.Zero(t, conns.Load(), "no refused target may be connected to")
}

// recordingTransport fails the test if any request reaches it.
type recordingTransport struct{ calls atomic.Int32 }

func (rt *recordingTransport) RoundTrip(*http.Request) (*http.Response, error) {
	rt.calls.Add(1)
	return nil, errors.New("unexpected round trip")
}

func TestDeliverChecksAddressesWithACustomTransport(t *testing.T) {
	t.Parallel()
	rt := &recordingTransport{}
	c := NewClient(Config{Transport: rt})

	_, err := c.Deliver(context.Background(), testRequest("https://127.0.0.1/"))
	require.ErrorIs(t, err, ErrBlockedAddress)
	require.Zero(t, rt.calls.Load())
}

func TestDeliverPinsTheCheckedAddress(t *testing.T) {
	t.Parallel()
	var seen atomic.Value
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Store(r.Host + " " + r.TLS.ServerName)
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	_, port, err := net.SplitHostPort(srv.Listener.Addr().String())
	require.NoError(t, err)

	lookups := make(chan string, 4)
	res := stubResolver{
		answers: map[string][]string{"hooks.example.com": {"127.0.0.1"}},
		lookups: lookups,
	}
	c := NewClient(Config{AllowPrivate: true, Resolver: res})
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	c.http.Transport.(tracedTransport).next.(*http.Transport).TLSClientConfig = &tls.Config{RootCAs: roots}

	resp, err := c.Deliver(context.Background(),
		testRequest("https://hooks.example.com:"+port+"/in"))
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	// The socket went to the resolved address while the Host header and the
	// TLS server name (checked against the certificate) kept the name.
	require.Equal(t, "hooks.example.com:"+port+" hooks.example.com", seen.Load())
	require.Equal(t, "hooks.example.com", <-lookups)
	require.Empty(t, lookups, "the name is resolved once per connection")
}

func TestDeliverDoesNotFollowRedirects(t *testing.T) {
	t.Parallel()
	var targetHits atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("/hooks", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/target", http.StatusFound)
	})
	mux.HandleFunc("/target", func(w http.ResponseWriter, _ *http.Request) {
		targetHits.Add(1)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	resp, err := NewClient(Config{AllowPrivate: true}).Deliver(context.Background(),
		testRequest(srv.URL+"/hooks"))
	require.NoError(t, err)
	require.Equal(t, http.StatusFound, resp.StatusCode)
	require.Zero(t, targetHits.Load())
}

func TestDeliverReadsRetryAfter(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Retry-After", "120")
		w.WriteHeader(http.StatusTooManyRequests)
		// More than the client reads: the answer must not depend on it.
		_, _ = w.Write([]byte(strings.Repeat("x", 1<<20)))
	}))
	t.Cleanup(srv.Close)

	resp, err := NewClient(Config{AllowPrivate: true}).Deliver(context.Background(),
		testRequest(srv.URL))
	require.NoError(t, err)
	require.Equal(t, Response{StatusCode: http.StatusTooManyRequests, RetryAfter: 2 * time.Minute},
		resp)
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := signedAt
	tests := []struct {
		name, value string
		want        time.Duration
	}{
		{"absent", "", 0},
		{"zero", "0", 0},
		{"seconds", "30", 30 * time.Second},
		{"padded", " 45 ", 45 * time.Second},
		{"capped", "7200", time.Hour},
		{"overflowing", "99999999999999999999999", time.Hour},
		{"negative", "-5", 0},
		{"garbage", "soon", 0},
		{"http date", now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{"past date", now.Add(-time.Minute).Format(http.TimeFormat), 0},
		{"far date", now.Add(3 * time.Hour).Format(http.TimeFormat), time.Hour},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.want, ParseRetryAfter(tc.value, now))
		})
	}
}

func TestDeliverTimeoutIsRetryable(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })

	c := NewClient(Config{AllowPrivate: true, Timeout: 50 * time.Millisecond})
	_, err := c.Deliver(context.Background(), testRequest(srv.URL))

	var ne *NetworkError
	require.ErrorAs(t, err, &ne)
	require.True(t, ne.Timeout())
	require.False(t, IsPermanent(err))
}

func TestDeliverConnectionRefusedIsRetryable(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())

	_, err = NewClient(Config{AllowPrivate: true}).Deliver(context.Background(),
		testRequest("http://"+addr+"/?token=customer-secret"))
	var ne *NetworkError
	require.ErrorAs(t, err, &ne)
	require.False(t, ne.Timeout())
	require.NotContains(t, err.Error(), "customer-secret", "the URL stays out of the error")
}

func TestDeliverReportsTheCallersCancellation(t *testing.T) {
	t.Parallel()
	srv, got := endpoint(t, http.StatusOK)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()

	_, err := NewClient(Config{AllowPrivate: true}).Deliver(ctx, testRequest(srv.URL))
	require.ErrorIs(t, err, context.Canceled)
	var ne *NetworkError
	require.False(t, errors.As(err, &ne))
	require.Empty(t, got)
}

func TestDeliverRefusesIncompleteRequests(t *testing.T) {
	t.Parallel()
	srv, got := endpoint(t, http.StatusOK)
	c := NewClient(Config{AllowPrivate: true})

	noID := testRequest(srv.URL)
	noID.ID = ""
	noSecret := testRequest(srv.URL)
	noSecret.Secrets = nil
	badSecret := testRequest(srv.URL)
	badSecret.Secrets = []string{"whsec_***"}

	for name, r := range map[string]Request{"no id": noID, "no secret": noSecret,
		"bad secret": badSecret} {
		t.Run(name, func(t *testing.T) {
			_, err := c.Deliver(context.Background(), r)
			require.ErrorIs(t, err, ErrInvalidRequest)
			require.True(t, IsPermanent(err))
		})
	}
	require.Empty(t, got, "nothing was sent")
}
