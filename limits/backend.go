package limits

import (
	"context"
	"errors"
	"hash/maphash"
	"time"

	"github.com/apimeter/apimeter/plans"
)

// Key names one counter: a policy ("hourly", "quota", "endpoint:…",
// "ip") of one tenant's user (or one client address).
type Key struct {
	Policy string
	Tenant string
	User   string
}

// hash spreads keys over shards and finds windows. The user, the part
// callers choose freely, goes through the seeded maphash; the tenant and
// policy, few and set by the server, through FNV-1a. Equal hashes of
// different keys are told apart by comparing the keys.
func (k Key) hash(seed maphash.Seed) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(k.Tenant); i++ {
		h = (h ^ uint64(k.Tenant[i])) * 1099511628211
	}
	h = (h ^ 0xff) * 1099511628211 // a separator: ("ab","c") ≠ ("a","bc")
	for i := 0; i < len(k.Policy); i++ {
		h = (h ^ uint64(k.Policy[i])) * 1099511628211
	}
	return maphash.String(seed, k.User) ^ h
}

// Check is one limit a decision respects.
type Check struct {
	Key   Key
	Limit uint64
	// Window > 0 is a sliding window; 0 a quota counted per period.
	Window time.Duration
	// PeriodStart and PeriodEnd bound a quota's period.
	PeriodStart, PeriodEnd time.Time
	// Soft counts without ever denying.
	Soft bool
	// Protect marks a limit of the serving application rather than of the
	// caller's plan: headers show it only in the IETF fields.
	Protect bool
}

// State is one check after a decision.
type State struct {
	// Used is what counts against the limit after the decision.
	Used uint64
	// Denied says this check refused the request.
	Denied bool
	// Unseeded says the quota counter of this period is not known yet:
	// nothing was counted; seed it (Raise) and decide again.
	Unseeded bool
	// Reset is when the limit next gives room back: for a window the
	// moment its oldest counted requests leave it, for a quota the end of
	// the period.
	Reset time.Time
	// RetryAfter, for a denied check, is how long until the request would
	// fit.
	RetryAfter time.Duration
}

// Remaining is what is left of limit after Used.
func (s State) Remaining(limit uint64) uint64 {
	if s.Used >= limit {
		return 0
	}
	return limit - s.Used
}

// MaxChecks is the most checks one decision takes: the hourly limit,
// the quota and a plan's endpoint limits.
const MaxChecks = 2 + plans.MaxEndpointLimits

// ErrTooManyChecks is returned for a decision with more than MaxChecks.
var ErrTooManyChecks = errors.New("limits: too many checks in one decision")

// Backend keeps the counters.
type Backend interface {
	// Take counts cost against every check if all of them admit it, and
	// nothing otherwise, as one atomic step. states[i] describes
	// checks[i] afterwards. A cost of 0 reads without counting. now is
	// the decision's time (a backend with its own clock may use that).
	Take(ctx context.Context, now time.Time, checks []Check, cost uint64, states []State) (allowed bool, err error)
	// Raise lifts a quota counter of the period starting at period to at
	// least used, starting the period's counter when it has none.
	Raise(ctx context.Context, k Key, period, periodEnd time.Time, used uint64) error
	// Count adds calls that already happened, refusing none: each
	// item's cost goes into the slot of its time (At, no later than
	// now) of every window it still falls in, and into its quota
	// counter when that counter holds the item's period; a counter that
	// does not is left alone and its state says Unseeded (seed it from
	// the records, which hold the call). items[i].States receives the
	// checks' states afterwards.
	Count(ctx context.Context, now time.Time, items []Counted) error
}

// Counted is a call the limiter hears of after it happened: a stored
// usage record no decision counted.
type Counted struct {
	Checks []Check
	At     time.Time
	Cost   uint64
	States []State
}

// Sliding windows are cut into slots: a window of length W has slots of
// W/60 and counts the current slot and the 60 before it. Any stretch of
// time of length W lies within 61 consecutive slots, so no stretch of
// length W ever holds more than the limit; a request counts against the
// window for between W and W + W/60.
const (
	windowSlots = 60
	ringSlots   = windowSlots + 1
)

func slotWidth(w time.Duration) int64 { return max(int64(w)/windowSlots, 1) }
