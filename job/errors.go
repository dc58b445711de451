package job

import (
	"errors"
	"fmt"
	"time"
)

// Class says what the router does with a failed message.
type Class string

const (
	// ClassRetryable errors are retried with backoff, then poisoned.
	ClassRetryable Class = "retryable"
	// ClassPermanent errors are poisoned after one attempt.
	ClassPermanent Class = "permanent"
)

// PermanentError marks an error that no retry can fix: a payload that does not
// match its schema, a provider's 4xx, a business refusal that needs a person.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent wraps err so the router poisons the message without retrying.
// Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{Err: err}
}

// Permanentf formats a permanent error.
func Permanentf(format string, args ...any) error {
	return &PermanentError{Err: fmt.Errorf(format, args...)}
}

// RetryAfterError is a retryable error that names the earliest useful retry,
// as a provider's Retry-After header does.
type RetryAfterError struct {
	Err   error
	After time.Duration
}

func (e *RetryAfterError) Error() string { return e.Err.Error() }
func (e *RetryAfterError) Unwrap() error { return e.Err }

// Classify returns the class of a handler error. Errors are retryable unless
// they say otherwise: an unexpected error (a database hiccup, a panic) is
// more often transient than not, and the retry budget bounds the cost.
func Classify(err error) Class {
	var p *PermanentError
	if errors.As(err, &p) {
		return ClassPermanent
	}
	return ClassRetryable
}

// ErrDuplicate reports that the message was already handled; the router acks it
// without effects.
var ErrDuplicate = errors.New("message already handled")
