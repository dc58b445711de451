// Package webhooks delivers Millrace's outbound webhooks to customer
// endpoints, signed with the Standard Webhooks scheme.
//
// A Client posts one signed request per call and reports what the endpoint
// answered; the retry schedule and the bookkeeping around it belong to the
// caller. The client refuses targets that are not public HTTPS addresses,
// because the URL is chosen by a customer and must not reach Millrace's own
// network.
package webhooks

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"time"
)

// DefaultTimeout bounds one delivery attempt when Config.Timeout is zero.
const DefaultTimeout = 10 * time.Second

// Config configures a Client.
type Config struct {
	// Timeout bounds one delivery attempt: resolving, connecting, sending and
	// reading the answer. Default 10s.
	Timeout time.Duration
	// AllowPrivate permits plain HTTP and private, loopback and link-local
	// targets. For tests and local demos only. Default false.
	AllowPrivate bool
	// Transport overrides the HTTP transport (tests). The URL and the
	// addresses its host resolves to are still checked before the request,
	// but the connection is made by Transport, so the checked address is not
	// pinned. Default nil: a transport that dials the checked address.
	Transport http.RoundTripper
	// Resolver looks up the addresses of a target host. Default
	// net.DefaultResolver.
	Resolver Resolver
}

// Resolver resolves a host name; *net.Resolver satisfies it.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Client posts signed webhook requests. It is safe for concurrent use.
type Client struct {
	cfg  Config
	http *http.Client
}

// NewClient returns a Client for cfg, with defaults filled in.
func NewClient(cfg Config) *Client {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Resolver == nil {
		cfg.Resolver = net.DefaultResolver
	}
	rt := cfg.Transport
	if rt == nil {
		rt = newPinnedTransport(cfg)
	}
	return &Client{cfg: cfg, http: &http.Client{
		Transport: tracedTransport{next: rt},
		// A redirect is the endpoint's answer, not an instruction: following
		// it would let a customer point Millrace at an address the guard
		// never checked.
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}}
}

// Request is one delivery attempt.
type Request struct {
	URL string
	// ID is sent as Webhook-Id: the event id, stable across retries.
	ID string
	// Timestamp is the signing time, sent as Webhook-Timestamp, and the
	// instant an HTTP-date Retry-After is measured from. Zero means now.
	Timestamp time.Time
	Body      []byte
	// Secrets sign the request, one signature each; two during rotation.
	Secrets []string
}

// Response is what the endpoint answered.
type Response struct {
	StatusCode int
	// RetryAfter is the endpoint's Retry-After, capped at MaxRetryAfter;
	// zero when absent or unreadable.
	RetryAfter time.Duration
}
