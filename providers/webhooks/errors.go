package webhooks

import (
	"context"
	"errors"
	"net"
)

// Errors that no retry can fix: the request is refused before anything is
// sent. Deliver wraps them; test with errors.Is or IsPermanent.
var (
	// ErrInsecureURL reports a URL that is not HTTPS.
	ErrInsecureURL = errors.New("webhook URL is not https")
	// ErrBlockedAddress reports a host that is, or resolves to, an address
	// that is not public: private, loopback, link-local, CGNAT, multicast,
	// unspecified, reserved or a cloud metadata service.
	ErrBlockedAddress = errors.New("webhook address is not public")
	// ErrInvalidURL reports a URL that cannot be parsed or has no host.
	ErrInvalidURL = errors.New("invalid webhook URL")
	// ErrInvalidRequest reports a request without an id or a usable
	// signing secret.
	ErrInvalidRequest = errors.New("invalid webhook request")
)

// IsPermanent reports whether err refuses the request itself, so that
// sending it again cannot succeed.
func IsPermanent(err error) bool {
	return errors.Is(err, ErrInsecureURL) || errors.Is(err, ErrBlockedAddress) ||
		errors.Is(err, ErrInvalidURL) || errors.Is(err, ErrInvalidRequest)
}

// NetworkError reports that the endpoint gave no answer: the name did not
// resolve, the connection or TLS handshake failed, or the attempt ran out of
// time. A later attempt may succeed.
type NetworkError struct{ Err error }

func (e *NetworkError) Error() string { return e.Err.Error() }
func (e *NetworkError) Unwrap() error { return e.Err }

// Timeout reports whether the attempt ran out of time.
func (e *NetworkError) Timeout() bool {
	if errors.Is(e.Err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(e.Err, &ne) && ne.Timeout()
}
