package billing

import (
	"strings"
	"time"
)

// Subscription statuses Millrace stores (Stripe's spelling).
const (
	subActive            = "active"
	subTrialing          = "trialing"
	subPastDue           = "past_due"
	subUnpaid            = "unpaid"
	subCanceled          = "canceled"
	subIncomplete        = "incomplete"
	subIncompleteExpired = "incomplete_expired"
	subPaused            = "paused"
)

// Organisation billing states.
const (
	stateOK         = "ok"
	stateGrace      = "grace"
	stateRestricted = "restricted"
)

// normaliseStatus maps Calmony's British "cancelled" to Stripe's "canceled"
// and lower-cases the rest. It returns "" for a status Millrace does not know.
func normaliseStatus(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "cancelled" {
		s = subCanceled
	}
	switch s {
	case subActive, subTrialing, subPastDue, subUnpaid, subCanceled, subIncomplete,
		subIncompleteExpired, subPaused:
		return s
	}
	return ""
}

// entitlement maps a subscription status to the organisation's billing
// state; change is false for incomplete, which leaves the state alone until
// the first payment.
func entitlement(status string) (state string, change bool) {
	switch status {
	case subActive, subTrialing:
		return stateOK, true
	case subPastDue:
		return stateGrace, true
	case subUnpaid, subCanceled, subIncompleteExpired, subPaused:
		return stateRestricted, true
	}
	return "", false
}

// nextBillingState returns the organisation's billing state after its
// subscription moved to status. A past_due subscription does not lift a
// restriction that dunning imposed; every other mapped status decides.
func nextBillingState(current, status string) string {
	next, change := entitlement(status)
	switch {
	case !change:
		return current
	case next == stateGrace && current == stateRestricted:
		return current
	}
	return next
}

// subscriptionApplies decides whether an event about a subscription may
// overwrite the stored row. A deletion always applies; nothing else leaves
// canceled, which is terminal; otherwise an event older than the stored
// provider_updated_at is stale. Equal times apply, so a redelivered event
// converges to the same row.
func subscriptionApplies(stored string, storedAt, eventAt time.Time, deleted bool) bool {
	switch {
	case deleted:
		return true
	case stored == subCanceled:
		return false
	}
	return !eventAt.Before(storedAt)
}

// Invoice statuses.
const (
	invOpen          = "open"
	invPaid          = "paid"
	invPaymentFailed = "payment_failed"
	invVoid          = "void"
	invUncollectible = "uncollectible"
)

// invoiceApplies decides whether an invoice event may overwrite the stored
// invoice. Paid and void are terminal: nothing overwrites them, so a late
// payment_failed after paid is a no-op. A paid event always applies to a
// non-terminal invoice, whatever its time; other events apply unless older
// than the stored provider_updated_at.
func invoiceApplies(stored string, storedAt time.Time, incoming string, eventAt time.Time) bool {
	switch {
	case stored == invPaid || stored == invVoid:
		return false
	case incoming == invPaid:
		return true
	}
	return !eventAt.Before(storedAt)
}

// Decline classes of a refused off-session charge.
const (
	declineSoft = "soft" // try again another day
	declineHard = "hard" // never again with this payment method
	declineAuth = "auth" // needs the customer: send the hosted invoice link
)

// hardDeclines are the decline codes that no retry with the same card can
// fix (Stripe's list, which Calmony mirrors).
var hardDeclines = map[string]bool{
	"lost_card": true, "stolen_card": true, "pickup_card": true, "fraudulent": true,
	"restricted_card": true, "invalid_account": true, "card_not_supported": true,
	"currency_not_supported": true, "expired_card": true, "incorrect_number": true,
	"invalid_number": true, "new_account_information_available": true,
	"revocation_of_all_authorizations": true, "revocation_of_authorization": true,
	"stop_payment_order": true, "security_violation": true, "transaction_not_allowed": true,
	"merchant_blacklist": true, "do_not_try_again": true,
}

// classifyDecline returns the class of a decline or error code.
func classifyDecline(code string) string {
	switch {
	case code == "authentication_required":
		return declineAuth
	case hardDeclines[code]:
		return declineHard
	}
	return declineSoft
}

// Auto-charge limits.
const (
	maxAutoChargeAttempts = 7
	maxDaysPastDue        = 21
	pendingWindow         = 30 * time.Minute
)

// capReached reports whether dunning must stop: 7 attempts made or 21 days
// past due.
func capReached(attempts, daysPastDue int) bool {
	return attempts >= maxAutoChargeAttempts || daysPastDue >= maxDaysPastDue
}

// lastFailure is the latest failed charge of an invoice.
type lastFailure struct {
	Code          string
	PaymentMethod string
}

// chargeCandidate is what the skip rules look at for one invoice.
type chargeCandidate struct {
	PendingSince  time.Time // latest pending payment from another run; zero if none
	LastFailure   *lastFailure
	PaymentMethod string // the customer's default payment method now
}

// Skip reasons.
const (
	skipNone        = ""
	skipPending     = "pending_payment"
	skipHardDecline = "hard_decline"
	skipAuthNeeded  = "authentication_required"
	skipNoMethod    = "no_payment_method"
)

// skipReason applies the skip rules of autoChargeOverdue at now.
func skipReason(c chargeCandidate, now time.Time) string {
	switch {
	case c.PaymentMethod == "":
		return skipNoMethod
	case !c.PendingSince.IsZero() && now.Sub(c.PendingSince) < pendingWindow:
		return skipPending
	case c.LastFailure == nil || c.LastFailure.PaymentMethod != c.PaymentMethod:
		return skipNone
	}
	switch classifyDecline(c.LastFailure.Code) {
	case declineHard:
		return skipHardDecline
	case declineAuth:
		return skipAuthNeeded
	}
	return skipNone
}

// daysBetween counts London calendar days from a to the date asOf.
func daysBetween(a time.Time, asOf string, loc *time.Location) int {
	d, err := time.ParseInLocation(time.DateOnly, asOf, loc)
	if err != nil {
		return 0
	}
	start := a.In(loc)
	s := time.Date(start.Year(), start.Month(), start.Day(), 0, 0, 0, 0, time.UTC)
	e := time.Date(d.Year(), d.Month(), d.Day(), 0, 0, 0, 0, time.UTC)
	return int(e.Sub(s).Hours() / 24)
}

// amlPacks maps credit pack codes to their credits.
var amlPacks = map[string]int64{"aml_10": 10, "aml_25": 25, "aml_50": 50, "aml_100": 100}

// rgiPremiumPence is the premium of an RGI policy by payment plan.
func rgiPremiumPence(plan string) (int64, bool) {
	switch plan {
	case "annual":
		return 19500, true
	case "monthly":
		return 1950, true
	}
	return 0, false
}
