package calmonypay

import "errors"

var errNoIdempotencyKey = errors.New("a mutating call needs an idempotency key")
