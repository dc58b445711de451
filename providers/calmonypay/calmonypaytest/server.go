// Package calmonypaytest is a fake Calmony Pay for tests: an httptest server
// speaking the Stripe-shaped API (subscriptions, payment intents with
// idempotency keys), able to fail, hang past the client's timeout and
// decline with any decline code, and a sender of signed webhooks.
package calmonypaytest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/millrace/millrace/providers/calmonypay"
)

// APIKey is the key the fake accepts.
const APIKey = "sk_test_fake"

// Server is the fake provider.
type Server struct {
	*httptest.Server

	mu        sync.Mutex
	subs      map[string]calmonypay.Subscription
	intents   map[string]calmonypay.PaymentIntent
	idem      map[string]saved
	declines  map[string]string // payment method → decline code
	faults    []fault
	charges   int
	requests  map[string]int
	idemSeen  []string
	nextIntID int
}

type saved struct {
	status int
	body   []byte
}

type fault struct {
	status int  // answer this status without acting
	hang   bool // act, then never answer
	after  time.Duration
}

// New starts a fake, closed when the test ends.
func New(t testing.TB) *Server {
	s := &Server{subs: map[string]calmonypay.Subscription{},
		intents: map[string]calmonypay.PaymentIntent{}, idem: map[string]saved{},
		declines: map[string]string{}, requests: map[string]int{}}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

// Client returns a calmonypay client pointed at the fake with timeout.
func (s *Server) Client(timeout time.Duration) *calmonypay.Client {
	return calmonypay.NewClient(calmonypay.Config{BaseURL: s.URL, APIKey: APIKey,
		Timeout: timeout})
}

// SetSubscription stores sub for GET /v1/subscriptions/{id}.
func (s *Server) SetSubscription(sub calmonypay.Subscription) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.subs[sub.ID] = sub
}

// SetPaymentIntent stores pi for GET /v1/payment_intents/{id}.
func (s *Server) SetPaymentIntent(pi calmonypay.PaymentIntent) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.intents[pi.ID] = pi
}

// Decline makes every charge of paymentMethod fail with code: a decline
// code (insufficient_funds, stolen_card, ...) or authentication_required.
func (s *Server) Decline(paymentMethod, code string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.declines[paymentMethod] = code
}

// FailNext answers the next request with status, doing nothing.
// retryAfter, when positive, is sent as Retry-After.
func (s *Server) FailNext(status int, retryAfter time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, fault{status: status, after: retryAfter})
}

// HangNext acts on the next request (a charge is made and its answer saved
// under its idempotency key) but never answers, so the client times out.
func (s *Server) HangNext() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, fault{hang: true})
}

// Charges returns how many charges succeeded or were declined: each one a
// real attempt on a card.
func (s *Server) Charges() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.charges
}

// Requests returns how many requests reached method+" "+path prefix.
func (s *Server) Requests(prefix string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for k, v := range s.requests {
		if strings.HasPrefix(k, prefix) {
			n += v
		}
	}
	return n
}

// IdempotencyKeys returns every Idempotency-Key received, in order.
func (s *Server) IdempotencyKeys() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.idemSeen...)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+APIKey {
		writeErr(w, http.StatusUnauthorized, "invalid_request_error", "invalid_api_key", "")
		return
	}
	s.mu.Lock()
	s.requests[r.Method+" "+r.URL.Path]++
	var f *fault
	if len(s.faults) > 0 {
		f = &s.faults[0]
		s.faults = s.faults[1:]
	}
	s.mu.Unlock()
	if f != nil && !f.hang {
		if f.after > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int(f.after.Seconds())))
		}
		writeErr(w, f.status, "api_error", "injected", "")
		return
	}
	status, body := s.route(r)
	if f != nil && f.hang {
		<-r.Context().Done()
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func (s *Server) route(r *http.Request) (int, []byte) {
	switch {
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/v1/subscriptions/"):
		s.mu.Lock()
		sub, ok := s.subs[strings.TrimPrefix(r.URL.Path, "/v1/subscriptions/")]
		s.mu.Unlock()
		return found(sub, ok)
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/v1/payment_intents/"):
		s.mu.Lock()
		pi, ok := s.intents[strings.TrimPrefix(r.URL.Path, "/v1/payment_intents/")]
		s.mu.Unlock()
		return found(pi, ok)
	case r.Method == http.MethodPost && r.URL.Path == "/v1/payment_intents":
		return s.createIntent(r)
	}
	return errBody(http.StatusNotFound, "invalid_request_error", "resource_missing", "")
}

func found(v any, ok bool) (int, []byte) {
	if !ok {
		return errBody(http.StatusNotFound, "invalid_request_error", "resource_missing", "")
	}
	b, _ := json.Marshal(v)
	return http.StatusOK, b
}

func (s *Server) createIntent(r *http.Request) (int, []byte) {
	key := r.Header.Get("Idempotency-Key")
	if err := r.ParseForm(); err != nil || key == "" {
		return errBody(http.StatusBadRequest, "invalid_request_error", "parameter_invalid", "")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.idemSeen = append(s.idemSeen, key)
	if prev, ok := s.idem[key]; ok {
		return prev.status, prev.body
	}
	amount, err := strconv.ParseInt(r.PostForm.Get("amount"), 10, 64)
	if err != nil || amount <= 0 {
		return errBody(http.StatusBadRequest, "invalid_request_error", "amount_invalid", "")
	}
	s.nextIntID++
	pi := calmonypay.PaymentIntent{ID: fmt.Sprintf("pi_fake_%d", s.nextIntID), Amount: amount,
		Currency: r.PostForm.Get("currency"), Customer: r.PostForm.Get("customer"),
		PaymentMethod: r.PostForm.Get("payment_method"), Status: "succeeded",
		Metadata: map[string]string{}}
	for k, v := range r.PostForm {
		if name, ok := strings.CutPrefix(k, "metadata["); ok && len(v) > 0 {
			pi.Metadata[strings.TrimSuffix(name, "]")] = v[0]
		}
	}
	s.charges++
	status, body := http.StatusOK, []byte(nil)
	if code, declined := s.declines[pi.PaymentMethod]; declined {
		pi.Status = "requires_payment_method"
		status, body = declineBody(code, pi)
	} else {
		body, _ = json.Marshal(pi)
	}
	s.intents[pi.ID] = pi
	s.idem[key] = saved{status: status, body: body}
	return status, body
}

func declineBody(code string, pi calmonypay.PaymentIntent) (int, []byte) {
	e := map[string]any{"type": "card_error", "code": "card_declined",
		"decline_code": code, "message": "Your card was declined.", "payment_intent": pi}
	if code == "authentication_required" {
		e["code"], e["decline_code"] = "authentication_required", "authentication_required"
	}
	b, _ := json.Marshal(map[string]any{"error": e})
	return http.StatusPaymentRequired, b
}

func errBody(status int, typ, code, decline string) (int, []byte) {
	b, _ := json.Marshal(map[string]any{"error": map[string]string{
		"type": typ, "code": code, "decline_code": decline}})
	return status, b
}

func writeErr(w http.ResponseWriter, status int, typ, code, decline string) {
	_, body := errBody(status, typ, code, decline)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// SendWebhook posts body to url signed with secret at now, as Calmony does,
// and returns the status code.
func SendWebhook(url, secret string, body []byte, now time.Time) (int, error) {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("build webhook: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(calmonypay.SignatureHeader, calmonypay.Sign(secret, now, body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("send webhook: %w", err)
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}
