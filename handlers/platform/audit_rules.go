package platform

import (
	"sort"
	"time"

	"github.com/millrace/millrace/store"
)

// auditAnchor names the instant an audit row's retention is counted from.
type auditAnchor int

const (
	// auditAnchorNone marks a category this job never deletes.
	auditAnchorNone auditAnchor = iota
	// auditAnchorCreated counts from audit_logs.created_at.
	auditAnchorCreated
	// auditAnchorFinancialYear counts from the end of the UK financial year
	// (6 April to 5 April) in which the row was created.
	auditAnchorFinancialYear
	// auditAnchorTenancyEnd counts from tenancies.ended_at of the tenancy the
	// row names in audit_logs.tenancy_id.
	auditAnchorTenancyEnd
)

// auditRetention is the statutory (or house) minimum for one category.
type auditRetention struct {
	anchor auditAnchor
	years  int
}

// auditStatutory is the retention of each audit category. A retention
// policy may lengthen these periods, never shorten them.
//
//   - security, business: 2 years from creation [ASSUMPTION in the domain
//     specification].
//   - billing: 6 years after the end of the financial year the row belongs
//     to (company financial records). The UK tax year, 6 April to 5 April,
//     stands in for the company's own financial year.
//   - compliance_evidence: 6 years after the related tenancy ended (the
//     contract and deposit limitation period). While the tenancy is live, or
//     has no ended_at, nothing is due; a row with no tenancy_id cannot be
//     dated and is kept.
//   - aml: 5 years after the business relationship ended. The relationship
//     end lives on aml_checks.relationship_ended_at, which does not exist
//     yet, so AML rows are kept until it does.
var auditStatutory = map[string]auditRetention{
	store.AuditSecurity:           {anchor: auditAnchorCreated, years: 2},
	store.AuditBusiness:           {anchor: auditAnchorCreated, years: 2},
	store.AuditBilling:            {anchor: auditAnchorFinancialYear, years: 6},
	store.AuditComplianceEvidence: {anchor: auditAnchorTenancyEnd, years: 6},
	store.AuditAML:                {anchor: auditAnchorNone, years: 5},
}

// auditCategories lists the categories in the order the job cleans them.
// Rows of any other category are never deleted.
var auditCategories = []string{
	store.AuditSecurity,
	store.AuditBusiness,
	store.AuditBilling,
	store.AuditComplianceEvidence,
	store.AuditAML,
}

// ukFinancialYearStart returns the start (6 April, 00:00 in loc) of the UK
// financial year that contains t.
func ukFinancialYearStart(t time.Time, loc *time.Location) time.Time {
	local := t.In(loc)
	start := time.Date(local.Year(), time.April, 6, 0, 0, 0, 0, loc)
	if local.Before(start) {
		start = start.AddDate(-1, 0, 0)
	}
	return start
}

// ukFinancialYearEnd returns the instant the UK financial year containing t
// ends: the start of the 6 April that follows 5 April, its last day.
func ukFinancialYearEnd(t time.Time, loc *time.Location) time.Time {
	return ukFinancialYearStart(t, loc).AddDate(1, 0, 0)
}

// auditCutoff returns the instant before which a row's anchor must lie for
// the row to be due on asOf (a London date at midnight): the whole retention
// period has run out by the start of that day. policyDays, when positive, is
// a retention policy's period counted from the same anchor; the longer of it
// and the statutory period applies. ok is false for a category that is never
// deleted.
func auditCutoff(category string, asOf time.Time, policyDays int,
	loc *time.Location) (cutoff time.Time, ok bool) {
	rule, known := auditStatutory[category]
	if !known || rule.anchor == auditAnchorNone {
		return time.Time{}, false
	}
	day := asOf.In(loc)
	y, m, d := day.Date()
	cutoff = time.Date(y-rule.years, m, d, 0, 0, 0, 0, loc)
	if policyDays > 0 {
		byPolicy := time.Date(y, m, d-policyDays, 0, 0, 0, 0, loc)
		if byPolicy.Before(cutoff) {
			cutoff = byPolicy
		}
	}
	if rule.anchor == auditAnchorFinancialYear {
		// A row is due when its year's end is at or before the cutoff, so
		// every row created before the last year boundary on or before the
		// cutoff is due.
		cutoff = ukFinancialYearStart(cutoff, loc)
	}
	return cutoff, true
}

// auditPolicy is one enabled retention_policies row for audit_logs.
type auditPolicy struct {
	OrganisationID string // "" for the platform default
	Category       string
	RetentionDays  int
	StatutoryDays  int // statutory_minimum_days
	Action         string
}

// auditScope is one pass of the cleanup: the rows of one category, either of
// one organisation with its own policy or of everyone else, due before
// cutoff.
type auditScope struct {
	Category string
	// OrganisationID limits the pass to one organisation. Empty means every
	// row whose organisation has no enabled policy of its own for Category.
	OrganisationID string
	Anchor         auditAnchor
	Cutoff         time.Time
}

// auditPlan turns the enabled policies into the passes of a run on asOf.
//
// How a policy applies: an organisation's policies for a category replace
// the platform default for that organisation. A policy's period is the
// larger of retention_days and statutory_minimum_days, counted from the
// category's statutory anchor (its anchor_column and join_column are not
// read: audit rows have fixed anchors), and the statutory period still
// applies when it is longer. Several policies for the same scope combine to
// the longest. A policy whose action is not 'delete' ('review',
// 'anonymise') means this job must not delete that scope at all.
func auditPlan(asOf time.Time, policies []auditPolicy, loc *time.Location) []auditScope {
	type scopeKey struct{ org, category string }
	type merged struct {
		days int
		keep bool
	}
	byScope := map[scopeKey]merged{}
	for _, p := range policies {
		k := scopeKey{p.OrganisationID, p.Category}
		m := byScope[k]
		m.days = max(m.days, p.RetentionDays, p.StatutoryDays)
		m.keep = m.keep || p.Action != "delete"
		byScope[k] = m
	}

	seen := map[string]bool{}
	orgs := []string{""}
	for k := range byScope {
		if k.org != "" && !seen[k.org] {
			seen[k.org] = true
			orgs = append(orgs, k.org)
		}
	}
	sort.Strings(orgs) // "" sorts first: the default pass leads each category

	var out []auditScope
	for _, category := range auditCategories {
		for _, org := range orgs {
			m, has := byScope[scopeKey{org, category}]
			if (org != "" && !has) || m.keep {
				continue
			}
			cutoff, ok := auditCutoff(category, asOf, m.days, loc)
			if !ok {
				continue
			}
			out = append(out, auditScope{Category: category, OrganisationID: org,
				Anchor: auditStatutory[category].anchor, Cutoff: cutoff})
		}
	}
	return out
}
