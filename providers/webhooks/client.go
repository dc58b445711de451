package webhooks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// UserAgent identifies Millrace to customer endpoints.
const UserAgent = "Millrace-Webhooks/1"

// MaxRetryAfter caps the Retry-After an endpoint can ask for.
const MaxRetryAfter = time.Hour

// maxResponseBody is how much of an answer is read, and then discarded:
// enough to let a small keep-alive response finish, not enough for an
// endpoint to make Millrace download anything.
const maxResponseBody = 64 << 10

// Deliver posts r.Body to r.URL, signed with r.Secrets, and returns the
// status the endpoint answered. Any status is an answer, redirects
// included: they are not followed. The error is one of:
//   - a refusal made before anything was sent (ErrInsecureURL,
//     ErrBlockedAddress, ErrInvalidURL, ErrInvalidRequest; see
//     IsPermanent), which no retry can fix;
//   - a *NetworkError, when no answer arrived (resolution, connection,
//     TLS or timeout), which a later attempt may overcome;
//   - ctx's own error, when the caller gave up first.
func (c *Client) Deliver(ctx context.Context, r Request) (Response, error) {
	u, err := checkURL(r.URL, c.cfg.AllowPrivate)
	if err != nil {
		return Response{}, fmt.Errorf("deliver webhook: %w", err)
	}
	if r.ID == "" {
		return Response{}, fmt.Errorf("deliver webhook: %w: no id", ErrInvalidRequest)
	}
	ts := r.Timestamp
	if ts.IsZero() {
		ts = time.Now()
	}
	sig, err := signatureHeader(r.Secrets, r.ID, ts, r.Body)
	if err != nil {
		return Response{}, fmt.Errorf("deliver webhook: %w", err)
	}

	attemptCtx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	if c.cfg.Transport != nil {
		// The pinned transport checks as it dials; a replacement cannot.
		g := guard{resolver: c.cfg.Resolver, allowPrivate: c.cfg.AllowPrivate}
		if _, err := g.resolve(attemptCtx, u.Hostname()); err != nil {
			return Response{}, deliveryError(ctx, err)
		}
	}
	req, err := http.NewRequestWithContext(attemptCtx, http.MethodPost, u.String(),
		bytes.NewReader(r.Body))
	if err != nil {
		return Response{}, fmt.Errorf("deliver webhook: %w: %w", ErrInvalidURL, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", UserAgent)
	req.Header.Set(HeaderID, r.ID)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	req.Header.Set(HeaderSignature, sig)

	resp, err := c.http.Do(req)
	if err != nil {
		return Response{}, deliveryError(ctx, err)
	}
	defer resp.Body.Close()
	// The status is the answer; an error reading the rest changes nothing.
	_, _ = io.CopyN(io.Discard, resp.Body, maxResponseBody)

	return Response{
		StatusCode: resp.StatusCode,
		RetryAfter: ParseRetryAfter(resp.Header.Get("Retry-After"), ts),
	}, nil
}

// deliveryError classifies a failure to get an answer. The URL is dropped
// from the error: customers put tokens in query strings, and the message
// ends up in logs and in the delivery's last_error.
func deliveryError(ctx context.Context, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	switch {
	case IsPermanent(err):
		return fmt.Errorf("deliver webhook: %w", err)
	case ctx.Err() != nil:
		return fmt.Errorf("deliver webhook: %w", context.Cause(ctx))
	default:
		return fmt.Errorf("deliver webhook: %w", &NetworkError{Err: err})
	}
}

// ParseRetryAfter reads a Retry-After value, either delay seconds or an
// HTTP date measured from now, and caps it at MaxRetryAfter. It returns
// zero for an empty, unreadable or past value.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.ParseUint(v, 10, 64); err == nil || errors.Is(err, strconv.ErrRange) {
		if err != nil || secs > uint64(MaxRetryAfter/time.Second) {
			return MaxRetryAfter
		}
		d = time.Duration(secs) * time.Second
	} else if at, err := http.ParseTime(v); err == nil {
		d = at.Sub(now)
	}

	return min(max(d, 0), MaxRetryAfter)
}
