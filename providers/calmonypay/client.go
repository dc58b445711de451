package calmonypay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// DefaultTimeout bounds one API call.
const DefaultTimeout = 15 * time.Second

// maxResponse caps a response body read from the API.
const maxResponse = 1 << 20

// ErrNotConfigured reports a client without an API key: permanent.
var ErrNotConfigured = errors.New("calmony pay api key not configured")

// Config configures a Client.
type Config struct {
	BaseURL string // e.g. https://api.calmony.example; required
	APIKey  string // the secret API key, not the webhook secret
	Timeout time.Duration
	Logger  *slog.Logger
	// HTTP overrides the transport; its Timeout is replaced by Timeout.
	HTTP *http.Client
}

// Client calls the Calmony Pay REST API, which follows Stripe's shape:
// form-encoded requests, JSON answers, errors as {"error":{...}}.
type Client struct {
	base   string
	key    string
	http   *http.Client
	logger *slog.Logger
}

// NewClient returns a client for cfg.
func NewClient(cfg Config) *Client {
	hc := &http.Client{}
	if cfg.HTTP != nil {
		c := *cfg.HTTP
		hc = &c
	}
	hc.Transport = traced(hc.Transport)
	hc.Timeout = cfg.Timeout
	if hc.Timeout <= 0 {
		hc.Timeout = DefaultTimeout
	}
	lg := cfg.Logger
	if lg == nil {
		lg = slog.Default()
	}
	return &Client{base: strings.TrimRight(cfg.BaseURL, "/"), key: cfg.APIKey, http: hc, logger: lg}
}

// APIError is an answer of the API other than 2xx.
type APIError struct {
	Status      int
	Type        string // e.g. card_error, invalid_request_error
	Code        string // e.g. card_declined, authentication_required
	DeclineCode string // e.g. insufficient_funds, stolen_card
	Message     string
	RetryAfter  time.Duration // from Retry-After, when sent
	// PaymentIntent is the intent a card error left behind, when sent.
	PaymentIntent *PaymentIntent
}

func (e *APIError) Error() string {
	s := fmt.Sprintf("calmony pay: status %d", e.Status)
	if e.Code != "" {
		s += " " + e.Code
	}
	if e.DeclineCode != "" {
		s += " (" + e.DeclineCode + ")"
	}
	return s
}

// Retryable reports whether a retry of the same call may succeed: 408, 425,
// 429 and 5xx.
func (e *APIError) Retryable() bool {
	switch {
	case e.Status >= 500, e.Status == http.StatusTooManyRequests,
		e.Status == http.StatusRequestTimeout, e.Status == http.StatusTooEarly:
		return true
	}
	return false
}

// IsCardError reports whether the call failed because the card was refused.
func (e *APIError) IsCardError() bool {
	return e.Type == "card_error" || e.Status == http.StatusPaymentRequired
}

// Retryable reports whether err, from a Client call, is worth retrying:
// network errors and timeouts are; APIError says for itself; a missing API
// key is not.
func Retryable(err error) bool {
	if err == nil || errors.Is(err, ErrNotConfigured) {
		return false
	}
	var api *APIError
	if errors.As(err, &api) {
		return api.Retryable()
	}
	return true
}

// do sends one request and decodes a 2xx answer into out. A mutating call
// carries idemKey as Idempotency-Key.
func (c *Client) do(ctx context.Context, method, path string, form url.Values,
	idemKey string, out any) error {
	if c.key == "" || c.base == "" {
		return ErrNotConfigured
	}
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if idemKey != "" {
		req.Header.Set("Idempotency-Key", idemKey)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("call calmony pay %s: %w", path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return fmt.Errorf("read calmony pay answer: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		return c.apiError(ctx, resp, raw)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("decode calmony pay answer: %w", err)
	}
	return nil
}

func (c *Client) apiError(ctx context.Context, resp *http.Response, raw []byte) error {
	var body struct {
		Error struct {
			Type          string         `json:"type"`
			Code          string         `json:"code"`
			DeclineCode   string         `json:"decline_code"`
			Message       string         `json:"message"`
			PaymentIntent *PaymentIntent `json:"payment_intent"`
		} `json:"error"`
	}
	_ = json.Unmarshal(raw, &body)
	e := &APIError{Status: resp.StatusCode, Type: body.Error.Type, Code: body.Error.Code,
		DeclineCode: body.Error.DeclineCode, Message: body.Error.Message,
		PaymentIntent: body.Error.PaymentIntent}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s >= 0 {
		e.RetryAfter = time.Duration(s) * time.Second
	}
	if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
		c.logger.ErrorContext(ctx, "calmony pay refused our credentials",
			slog.String("alert", "calmony_credentials"), slog.Int("status", resp.StatusCode))
	}
	return e
}
