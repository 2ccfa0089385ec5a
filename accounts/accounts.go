// Package accounts keeps each user's account in the accounts table: the
// plan the user is on, the day of the month its billing cycle starts and
// how its quota is enforced.
package accounts

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/apimeter/apimeter/auth"
	"github.com/apimeter/apimeter/limits"
	"github.com/apimeter/apimeter/plans"
	"github.com/apimeter/apimeter/store"
)

// Account is a user's plan, billing-cycle anchor and quota mode.
type Account struct {
	Tenant    string `json:"tenantId"`
	User      string `json:"userId"`
	Plan      string `json:"plan"`
	AnchorDay int    `json:"billingAnchorDay"`
	// QuotaMode is plans.QuotaHard, plans.QuotaSoft, or "" for the
	// plan's mode.
	QuotaMode string    `json:"quotaMode"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// Validate checks an account. validPlan reports whether a lower-case plan
// name exists; nil accepts any name. AnchorDay 0 stands for 1.
func (a Account) Validate(validPlan func(string) bool) error {
	var errs []error
	if !auth.ValidTenant(a.Tenant) {
		errs = append(errs, fmt.Errorf("tenantId %.140q: want %s", a.Tenant, auth.NameRule))
	}
	if !auth.ValidName(a.User) {
		errs = append(errs, fmt.Errorf("userId %.140q: want %s", a.User, auth.NameRule))
	}
	switch {
	case a.Plan == "":
		errs = append(errs, errors.New("plan: required"))
	case len(a.Plan) > 128:
		errs = append(errs, errors.New("plan: at most 128 characters"))
	case validPlan != nil && !validPlan(strings.ToLower(a.Plan)):
		errs = append(errs, fmt.Errorf("plan %q: no such plan", a.Plan))
	}
	if a.AnchorDay < 0 || a.AnchorDay > 31 {
		errs = append(errs, fmt.Errorf("billingAnchorDay %d: want a day of the month, 1 to 31", a.AnchorDay))
	}
	if a.QuotaMode != "" && a.QuotaMode != plans.QuotaHard && a.QuotaMode != plans.QuotaSoft {
		errs = append(errs, fmt.Errorf("quotaMode %q: want %q, %q, or none for the plan's mode", a.QuotaMode, plans.QuotaHard, plans.QuotaSoft))
	}
	return errors.Join(errs...)
}

// DB is what the account store needs of a store.
type DB interface {
	Exec(ctx context.Context, query string, params ...store.Param) error
	Query(ctx context.Context, query string, params ...store.Param) (store.Rows, error)
}

// Store reads and writes accounts. Every write is a new row version; the
// newest version of (tenant, user) is the account, and a deleted version
// removes it.
type Store struct {
	db  DB
	now func() time.Time

	mu   sync.Mutex
	last uint64 // the last version this process wrote
}

// New builds an account store.
func New(db DB) *Store { return &Store{db: db, now: time.Now} }

const columns = `tenant_id, user_id, plan, billing_anchor_day, quota_mode, created_at, updated_at`

func scan(r store.Rows, extra ...any) (Account, error) {
	var a Account
	err := r.Scan(append([]any{&a.Tenant, &a.User, &a.Plan, &a.AnchorDay, &a.QuotaMode, &a.CreatedAt, &a.UpdatedAt}, extra...)...)
	return a, err
}

// Get returns the account of a user; false when there is none.
func (s *Store) Get(ctx context.Context, tenant, user string) (Account, bool, error) {
	rows, err := s.db.Query(ctx, `SELECT `+columns+` FROM accounts FINAL
		WHERE tenant_id = {tenant:String} AND user_id = {user:String} AND deleted = 0`,
		store.Named("tenant", tenant), store.Named("user", user))
	if err != nil {
		return Account{}, false, fmt.Errorf("read account: %w", err)
	}
	defer rows.Close()
	if !rows.Next() {
		return Account{}, false, rows.Err()
	}
	a, err := scan(rows)
	return a, err == nil, err
}

// Resolve implements limits.Resolver: a user's plan, billing anchor day
// and quota mode; limits.Account{} (the default plan) without an account.
func (s *Store) Resolve(ctx context.Context, tenant, user string) (limits.Account, error) {
	a, ok, err := s.Get(ctx, tenant, user)
	if err != nil || !ok {
		return limits.Account{}, err
	}
	return limits.Account{Plan: a.Plan, AnchorDay: a.AnchorDay, QuotaMode: a.QuotaMode}, nil
}

// List returns the accounts of tenant (auth.AllTenants: of every tenant)
// on plan ("": on any plan), by tenant and user.
func (s *Store) List(ctx context.Context, tenant, plan string) ([]Account, error) {
	q := `SELECT ` + columns + ` FROM accounts FINAL WHERE deleted = 0`
	var params []store.Param
	if tenant != auth.AllTenants {
		q += ` AND tenant_id = {tenant:String}`
		params = append(params, store.Named("tenant", tenant))
	}
	if plan != "" {
		q += ` AND plan = {plan:String}`
		params = append(params, store.Named("plan", strings.ToLower(plan)))
	}
	rows, err := s.db.Query(ctx, q+` ORDER BY tenant_id, user_id`, params...)
	if err != nil {
		return nil, fmt.Errorf("list accounts: %w", err)
	}
	defer rows.Close()
	out := []Account{}
	for rows.Next() {
		a, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// Put creates or replaces an account and returns it as stored: the plan in
// lower case, AnchorDay 0 as 1, the creation time of an existing account
// kept.
func (s *Store) Put(ctx context.Context, a Account) (Account, error) {
	a.Plan = strings.ToLower(a.Plan)
	if a.AnchorDay == 0 {
		a.AnchorDay = 1
	}
	if err := a.Validate(nil); err != nil {
		return Account{}, err
	}
	old, version, err := s.newest(ctx, a.Tenant, a.User)
	if err != nil {
		return Account{}, err
	}
	now := s.now().UTC().Truncate(time.Millisecond)
	a.CreatedAt, a.UpdatedAt = now, now
	if old != nil {
		a.CreatedAt = old.CreatedAt
	}
	if err := s.write(ctx, a, version, false); err != nil {
		return Account{}, err
	}
	return a, nil
}

// Delete removes an account; false when there was none.
func (s *Store) Delete(ctx context.Context, tenant, user string) (bool, error) {
	old, version, err := s.newest(ctx, tenant, user)
	if err != nil || old == nil {
		return false, err
	}
	old.UpdatedAt = s.now().UTC().Truncate(time.Millisecond)
	return true, s.write(ctx, *old, version, true)
}

// newest reads the newest row of an account, deleted or not: its account
// (nil when the newest row is a deletion or there is none) and its
// version, which the next write must exceed to win.
func (s *Store) newest(ctx context.Context, tenant, user string) (*Account, uint64, error) {
	rows, err := s.db.Query(ctx, `SELECT `+columns+`, deleted, version FROM accounts
		WHERE tenant_id = {tenant:String} AND user_id = {user:String}
		ORDER BY version DESC, deleted DESC LIMIT 1`,
		store.Named("tenant", tenant), store.Named("user", user))
	if err != nil {
		return nil, 0, fmt.Errorf("read account: %w", err)
	}
	defer rows.Close()
	if !rows.Next() {
		return nil, 0, rows.Err()
	}
	var deleted uint8
	var version uint64
	a, err := scan(rows, &deleted, &version)
	if err != nil || deleted != 0 {
		return nil, version, err
	}
	return &a, version, nil
}

// nextVersion is the version of a write: the clock in nanoseconds, but
// always past the row it replaces (whose writer's clock may run ahead)
// and past this process's previous write, so two quick writes never tie.
func (s *Store) nextVersion(after uint64) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := max(uint64(s.now().UnixNano()), after+1, s.last+1)
	s.last = v
	return v
}

func (s *Store) write(ctx context.Context, a Account, after uint64, deleted bool) error {
	del := uint8(0)
	if deleted {
		del = 1
	}
	err := s.db.Exec(ctx, `INSERT INTO accounts (tenant_id, user_id, plan, billing_anchor_day, quota_mode, created_at, updated_at, version, deleted)
		SELECT {tenant:String}, {user:String}, {plan:String}, {anchor:UInt8}, {mode:String},
		       {created:DateTime64(3, 'UTC')}, {updated:DateTime64(3, 'UTC')}, {version:UInt64}, {deleted:UInt8}`,
		store.Named("tenant", a.Tenant), store.Named("user", a.User), store.Named("plan", a.Plan),
		store.Named("anchor", uint8(a.AnchorDay)), store.Named("mode", a.QuotaMode),
		store.Named("created", a.CreatedAt), store.Named("updated", a.UpdatedAt),
		store.Named("version", s.nextVersion(after)), store.Named("deleted", del))
	if err != nil {
		return fmt.Errorf("write account %s/%s: %w", a.Tenant, a.User, err)
	}
	return nil
}
