package webhooks

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// blockedPrefixes are the ranges, beyond those netip.Addr classifies by
// itself, that a customer's URL must not reach.
var blockedPrefixes = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),       // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),   // carrier-grade NAT
	netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
	netip.MustParsePrefix("192.0.2.0/24"),    // documentation
	netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking
	netip.MustParsePrefix("198.51.100.0/24"), // documentation
	netip.MustParsePrefix("203.0.113.0/24"),  // documentation
	netip.MustParsePrefix("240.0.0.0/4"),     // reserved, and broadcast
	netip.MustParsePrefix("::/96"),           // IPv4-compatible, deprecated
	netip.MustParsePrefix("64:ff9b::/96"),    // NAT64: reaches IPv4 via a gateway
	netip.MustParsePrefix("64:ff9b:1::/48"),  // local-use NAT64
	netip.MustParsePrefix("100::/64"),        // discard
	netip.MustParsePrefix("2001::/32"),       // Teredo: embeds an IPv4 address
	netip.MustParsePrefix("2001:db8::/32"),   // documentation
	netip.MustParsePrefix("2002::/16"),       // 6to4: embeds an IPv4 address
	netip.MustParsePrefix("fec0::/10"),       // site-local, deprecated
}

// metadataAddrs are cloud metadata services. Their ranges are refused
// anyway; naming them keeps the rule from resting on that.
var metadataAddrs = []netip.Addr{
	netip.MustParseAddr("169.254.169.254"), // AWS, GCP, Azure and others
	netip.MustParseAddr("fd00:ec2::254"),   // AWS over IPv6
}

// isPublic reports whether a customer's webhook may be sent to a. An
// IPv4-mapped IPv6 address is judged as the IPv4 address it carries.
func isPublic(a netip.Addr) bool {
	a = a.Unmap().WithZone("")
	if !a.IsValid() || a.IsLoopback() || a.IsPrivate() || a.IsUnspecified() ||
		a.IsMulticast() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() ||
		a.IsInterfaceLocalMulticast() {
		return false
	}
	for _, m := range metadataAddrs {
		if a == m {
			return false
		}
	}
	for _, p := range blockedPrefixes {
		if p.Contains(a) {
			return false
		}
	}
	return true
}

// checkURL parses a customer's webhook URL and refuses one the client must
// not send to, before any name is resolved.
func checkURL(raw string, allowPrivate bool) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: cannot be parsed", ErrInvalidURL)
	}
	switch strings.ToLower(u.Scheme) {
	case "https":
	case "http":
		if !allowPrivate {
			return nil, ErrInsecureURL
		}
	default:
		return nil, fmt.Errorf("%w: scheme %q", ErrInvalidURL, u.Scheme)
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("%w: no host", ErrInvalidURL)
	}
	return u, nil
}

// guard resolves a host and keeps only addresses a webhook may reach.
type guard struct {
	resolver     Resolver
	allowPrivate bool
}

// resolve returns the addresses of host, in the resolver's order. It
// refuses the host when any address is not public: a name that mixes public
// and private answers is a rebinding attempt or a misconfiguration, and
// neither should reach the private one.
func (g guard) resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a}
	} else {
		found, err := g.resolver.LookupNetIP(ctx, "ip", host)
		if err != nil {
			return nil, fmt.Errorf("resolve %s: %w", host, err)
		}
		addrs = found
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("resolve %s: no addresses", host)
	}
	if g.allowPrivate {
		return addrs, nil
	}
	for _, a := range addrs {
		if !isPublic(a) {
			return nil, fmt.Errorf("%w: %s resolves to %s", ErrBlockedAddress, host, a.Unmap())
		}
	}
	return addrs, nil
}

// newPinnedTransport returns a transport that resolves each connection's
// host once, checks every address, and connects to a checked address. The
// request keeps the host name, so the Host header and TLS server name are
// the customer's while the socket goes where the check allowed: a DNS answer
// that changes between check and connect (rebinding) is never used.
func newPinnedTransport(cfg Config) *http.Transport {
	g := guard{resolver: cfg.Resolver, allowPrivate: cfg.AllowPrivate}
	d := &net.Dialer{Timeout: cfg.Timeout, KeepAlive: 30 * time.Second}

	return &http.Transport{
		// No proxy: a proxy would connect, on our behalf, to an address
		// nobody checked.
		Proxy: nil,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, port, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, fmt.Errorf("dial webhook: %w", err)
			}
			addrs, err := g.resolve(ctx, host)
			if err != nil {
				return nil, err
			}

			return dialFirst(ctx, d, network, addrs, port)
		},
		TLSHandshakeTimeout: cfg.Timeout,
		MaxIdleConns:        100,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     90 * time.Second,
	}
}

// dialFirst connects to the first of addrs that answers.
func dialFirst(ctx context.Context, d *net.Dialer, network string, addrs []netip.Addr,
	port string) (net.Conn, error) {
	var errs []error
	for _, a := range addrs {
		conn, err := d.DialContext(ctx, network, net.JoinHostPort(a.Unmap().String(), port))
		if err == nil {
			return conn, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}

	return nil, errors.Join(errs...)
}
