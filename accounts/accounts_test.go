package accounts

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/apimeter/apimeter/auth"
	"github.com/apimeter/apimeter/plans"
	"github.com/apimeter/apimeter/schema"
	"github.com/apimeter/apimeter/store/storetest"
)

func newStore(t *testing.T) *Store {
	t.Helper()
	db := storetest.Open(t)
	m, err := schema.NewMigrator(db, schema.Single, nil)
	require.NoError(t, err)
	_, err = m.Apply(context.Background())
	require.NoError(t, err)
	return New(db)
}

// clock is a settable clock for a store.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestAccountLifecycle(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	clk := &clock{t: time.Date(2026, 11, 3, 9, 30, 0, 123_456_789, time.UTC)}
	s.now = clk.now

	_, ok, err := s.Get(ctx, "acme", "u1")
	require.NoError(t, err)
	require.False(t, ok)

	put, err := s.Put(ctx, Account{Tenant: "acme", User: "u1", Plan: "Pro"})
	require.NoError(t, err)
	created := time.Date(2026, 11, 3, 9, 30, 0, 123_000_000, time.UTC)
	require.Equal(t, Account{Tenant: "acme", User: "u1", Plan: "pro", AnchorDay: 1, CreatedAt: created, UpdatedAt: created}, put)

	got, ok, err := s.Get(ctx, "acme", "u1")
	require.NoError(t, err)
	require.True(t, ok)
	requireSame(t, put, got)

	// An update keeps the creation time.
	clk.t = clk.t.Add(time.Hour)
	put, err = s.Put(ctx, Account{Tenant: "acme", User: "u1", Plan: "starter", AnchorDay: 15, QuotaMode: plans.QuotaSoft, CreatedAt: clk.t.Add(24 * time.Hour)})
	require.NoError(t, err)
	require.True(t, put.CreatedAt.Equal(created), put.CreatedAt)
	require.True(t, put.UpdatedAt.Equal(created.Add(time.Hour)), put.UpdatedAt)
	got, _, err = s.Get(ctx, "acme", "u1")
	require.NoError(t, err)
	requireSame(t, Account{Tenant: "acme", User: "u1", Plan: "starter", AnchorDay: 15, QuotaMode: plans.QuotaSoft,
		CreatedAt: created, UpdatedAt: created.Add(time.Hour)}, got)

	_, err = s.Put(ctx, Account{Tenant: "acme", User: "u2", Plan: "free", AnchorDay: 31, QuotaMode: plans.QuotaHard})
	require.NoError(t, err)
	list, err := s.List(ctx, "acme", "")
	require.NoError(t, err)
	require.Equal(t, []string{"u1", "u2"}, users(list))
	list, err = s.List(ctx, "acme", "Free")
	require.NoError(t, err)
	require.Equal(t, []string{"u2"}, users(list))
	list, err = s.List(ctx, "acme", "enterprise")
	require.NoError(t, err)
	require.NotNil(t, list)
	require.Empty(t, list)

	deleted, err := s.Delete(ctx, "acme", "u1")
	require.NoError(t, err)
	require.True(t, deleted)
	_, ok, err = s.Get(ctx, "acme", "u1")
	require.NoError(t, err)
	require.False(t, ok)
	list, err = s.List(ctx, auth.AllTenants, "")
	require.NoError(t, err)
	require.Equal(t, []string{"u2"}, users(list))
	deleted, err = s.Delete(ctx, "acme", "u1")
	require.NoError(t, err)
	require.False(t, deleted, "a second delete finds nothing")
	deleted, err = s.Delete(ctx, "acme", "nobody")
	require.NoError(t, err)
	require.False(t, deleted)

	// An account put again after a deletion is a new account.
	clk.t = clk.t.Add(time.Hour)
	put, err = s.Put(ctx, Account{Tenant: "acme", User: "u1", Plan: "free"})
	require.NoError(t, err)
	require.True(t, put.CreatedAt.Equal(created.Add(2*time.Hour)), put.CreatedAt)
	got, ok, err = s.Get(ctx, "acme", "u1")
	require.NoError(t, err)
	require.True(t, ok)
	requireSame(t, put, got)
}

// Writes in the same nanosecond, or from a clock running behind the one
// that wrote the stored row, still supersede it.
func TestAccountVersionsNeverTie(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	clk := &clock{t: time.Date(2026, 11, 3, 9, 30, 0, 0, time.UTC)}
	s.now = clk.now
	for i, plan := range []string{"free", "starter", "pro", "enterprise", "free", "pro"} {
		_, err := s.Put(ctx, Account{Tenant: "acme", User: "u1", Plan: plan, AnchorDay: i + 1})
		require.NoError(t, err)
		got, ok, err := s.Get(ctx, "acme", "u1")
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, plan, got.Plan, "write %d", i)
		require.Equal(t, i+1, got.AnchorDay, "write %d", i)
	}

	// Another process whose clock is an hour behind.
	behind := New(s.db)
	behind.now = func() time.Time { return clk.t.Add(-time.Hour) }
	_, err := behind.Put(ctx, Account{Tenant: "acme", User: "u1", Plan: "starter"})
	require.NoError(t, err)
	got, _, err := s.Get(ctx, "acme", "u1")
	require.NoError(t, err)
	require.Equal(t, "starter", got.Plan)
	deleted, err := behind.Delete(ctx, "acme", "u1")
	require.NoError(t, err)
	require.True(t, deleted)
	_, ok, err := s.Get(ctx, "acme", "u1")
	require.NoError(t, err)
	require.False(t, ok)
}

func TestAccountTenantFilter(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	for _, a := range []Account{
		{Tenant: "acme", User: "u2", Plan: "pro"},
		{Tenant: "acme", User: "u1", Plan: "free"},
		{Tenant: "acme-eu", User: "u1", Plan: "pro"},
		{Tenant: "globex", User: "u1", Plan: "pro"},
		{Tenant: "globex", User: "admin", Plan: "enterprise"},
	} {
		_, err := s.Put(ctx, a)
		require.NoError(t, err)
	}
	for tenant, want := range map[string][]string{
		"acme":          {"acme/u1", "acme/u2"},
		"acme-eu":       {"acme-eu/u1"},
		"globex":        {"globex/admin", "globex/u1"},
		"initech":       {},
		"acm":           {},
		auth.AllTenants: {"acme/u1", "acme/u2", "acme-eu/u1", "globex/admin", "globex/u1"},
	} {
		list, err := s.List(ctx, tenant, "")
		require.NoError(t, err)
		require.Equal(t, want, ids(list), tenant)
	}
	list, err := s.List(ctx, "globex", "pro")
	require.NoError(t, err)
	require.Equal(t, []string{"globex/u1"}, ids(list))
	list, err = s.List(ctx, auth.AllTenants, "pro")
	require.NoError(t, err)
	require.Equal(t, []string{"acme/u2", "acme-eu/u1", "globex/u1"}, ids(list))

	// Get and Delete are per tenant too.
	_, ok, err := s.Get(ctx, "initech", "u1")
	require.NoError(t, err)
	require.False(t, ok)
	deleted, err := s.Delete(ctx, "initech", "u1")
	require.NoError(t, err)
	require.False(t, deleted)
	deleted, err = s.Delete(ctx, "globex", "u1")
	require.NoError(t, err)
	require.True(t, deleted)
	got, ok, err := s.Get(ctx, "acme", "u1")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, "free", got.Plan)
	list, err = s.List(ctx, auth.AllTenants, "pro")
	require.NoError(t, err)
	require.Equal(t, []string{"acme/u2", "acme-eu/u1"}, ids(list))
}

// Values reach the engine as parameters: quotes and backslashes in a
// plan are stored as they are.
func TestAccountValuesAreParameters(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	plan := `pro' or '1'='1\` + "\t"
	_, err := s.Put(ctx, Account{Tenant: "acme", User: "u1", Plan: plan})
	require.NoError(t, err)
	_, err = s.Put(ctx, Account{Tenant: "acme", User: "u2", Plan: "pro"})
	require.NoError(t, err)
	got, ok, err := s.Get(ctx, "acme", "u1")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, plan, got.Plan)
	list, err := s.List(ctx, "acme", plan)
	require.NoError(t, err)
	require.Equal(t, []string{"acme/u1"}, ids(list))
	list, err = s.List(ctx, "acme' OR '1'='1", "")
	require.NoError(t, err)
	require.Empty(t, list)
}

func TestAccountValidate(t *testing.T) {
	validPlan := func(p string) bool { return p == "free" || p == "pro" }
	ok := Account{Tenant: "acme", User: "u1", Plan: "pro"}
	require.NoError(t, ok.Validate(validPlan))
	for _, a := range []Account{
		{Tenant: "acme", User: "u1", Plan: "PRO", AnchorDay: 31, QuotaMode: plans.QuotaHard},
		{Tenant: "acme", User: "u.1@x:y-z_", Plan: "free", AnchorDay: 1, QuotaMode: plans.QuotaSoft},
	} {
		require.NoError(t, a.Validate(validPlan), "%+v", a)
	}
	for _, c := range []struct {
		a     Account
		field string
	}{
		{Account{Tenant: "", User: "u1", Plan: "pro"}, "tenantId"},
		{Account{Tenant: auth.AllTenants, User: "u1", Plan: "pro"}, "tenantId"},
		{Account{Tenant: "acme", User: "u\x001", Plan: "pro"}, "userId"},
		{Account{Tenant: "acme", User: strings.Repeat("u", 129), Plan: "pro"}, "userId"},
		{Account{Tenant: "acme", User: "u1"}, "plan"},
		{Account{Tenant: "acme", User: "u1", Plan: "gold"}, "plan"},
		{Account{Tenant: "acme", User: "u1", Plan: "pro", AnchorDay: 32}, "billingAnchorDay"},
		{Account{Tenant: "acme", User: "u1", Plan: "pro", AnchorDay: -1}, "billingAnchorDay"},
		{Account{Tenant: "acme", User: "u1", Plan: "pro", QuotaMode: "Hard"}, "quotaMode"},
		{Account{Tenant: "acme", User: "u1", Plan: "pro", QuotaMode: "off"}, "quotaMode"},
	} {
		err := c.a.Validate(validPlan)
		require.Error(t, err, "%+v", c.a)
		require.True(t, strings.HasPrefix(err.Error(), c.field), "%v", err)
	}
	// Every problem is reported.
	err := Account{Tenant: "", User: "", Plan: "gold", AnchorDay: 40, QuotaMode: "x"}.Validate(validPlan)
	for _, field := range []string{"tenantId", "userId", "plan", "billingAnchorDay", "quotaMode"} {
		require.Contains(t, err.Error(), field)
	}
	// Without a plan list any name goes; Put refuses what Validate refuses.
	require.NoError(t, Account{Tenant: "acme", User: "u1", Plan: "gold"}.Validate(nil))
	_, err = New(nil).Put(context.Background(), Account{Tenant: "acme", User: "u1", Plan: "pro", AnchorDay: 32})
	require.ErrorContains(t, err, "billingAnchorDay")
}

func requireSame(t *testing.T, want, got Account) {
	t.Helper()
	require.True(t, want.CreatedAt.Equal(got.CreatedAt), "createdAt: want %v, got %v", want.CreatedAt, got.CreatedAt)
	require.True(t, want.UpdatedAt.Equal(got.UpdatedAt), "updatedAt: want %v, got %v", want.UpdatedAt, got.UpdatedAt)
	want.CreatedAt, want.UpdatedAt, got.CreatedAt, got.UpdatedAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	require.Equal(t, want, got)
}

func users(list []Account) []string {
	out := []string{}
	for _, a := range list {
		out = append(out, a.User)
	}
	return out
}

func ids(list []Account) []string {
	out := []string{}
	for _, a := range list {
		out = append(out, a.Tenant+"/"+a.User)
	}
	return out
}
