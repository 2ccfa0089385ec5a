package auth

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/apimeter/apimeter/schema"
	"github.com/apimeter/apimeter/store/storetest"
)

func newStore(t *testing.T, admin string) *Store {
	t.Helper()
	db := storetest.Open(t)
	m, err := schema.NewMigrator(db, schema.Single, nil)
	require.NoError(t, err)
	_, err = m.Apply(context.Background())
	require.NoError(t, err)
	return NewStore(db, admin)
}

func TestKeysLifecycle(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, "bootstrap-admin-key-123456")

	p, err := s.Authenticate(ctx, "bootstrap-admin-key-123456")
	require.NoError(t, err)
	require.True(t, p.Global())

	k, secret, err := s.Create(ctx, NewKey{Tenant: "acme", User: "u1", Role: RoleUser, Name: "ci"})
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(secret, "am_"))
	require.Len(t, secret, 46)
	require.True(t, strings.HasPrefix(secret, k.Prefix))

	p, err = s.Authenticate(ctx, secret)
	require.NoError(t, err)
	require.Equal(t, Principal{KeyID: k.ID, Tenant: "acme", User: "u1", Role: RoleUser}, p)
	require.False(t, p.Admin())

	_, err = s.Authenticate(ctx, secret+"x")
	require.ErrorIs(t, err, ErrUnknownKey)
	_, err = s.Authenticate(ctx, "not-a-key")
	require.ErrorIs(t, err, ErrUnknownKey)

	// Only the hash is stored.
	rows, err := s.db.Query(ctx, "SELECT key_hash FROM api_keys")
	require.NoError(t, err)
	for rows.Next() {
		var h string
		require.NoError(t, rows.Scan(&h))
		require.Equal(t, Hash(secret), h)
		require.NotContains(t, h, secret)
	}
	rows.Close()

	other, _, err := s.Create(ctx, NewKey{Tenant: "globex", User: "boss", Role: RoleAdmin})
	require.NoError(t, err)
	keys, err := s.List(ctx, "acme")
	require.NoError(t, err)
	require.Len(t, keys, 1)
	require.Equal(t, k.ID, keys[0].ID)
	keys, err = s.List(ctx, AllTenants)
	require.NoError(t, err)
	require.Len(t, keys, 2)

	revoked, err := s.Revoke(ctx, k.ID)
	require.NoError(t, err)
	require.NotNil(t, revoked.RevokedAt)
	_, err = s.Authenticate(ctx, secret)
	require.ErrorIs(t, err, ErrRevoked, "revocation is immediate in this process")
	got, _, err := s.Get(ctx, other.ID)
	require.NoError(t, err)
	require.Nil(t, got.RevokedAt)
	_, err = s.Revoke(ctx, "key_nope")
	require.ErrorIs(t, err, ErrNotFound)
}

func TestExpiredKeyAndCache(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, "")
	clock := time.Now()
	s.now = func() time.Time { return clock }
	exp := clock.Add(time.Hour)
	_, secret, err := s.Create(ctx, NewKey{Tenant: "acme", User: "u1", Role: RoleUser, ExpiresAt: &exp})
	require.NoError(t, err)
	_, err = s.Authenticate(ctx, secret)
	require.NoError(t, err)
	clock = clock.Add(2 * time.Hour)
	_, err = s.Authenticate(ctx, secret)
	require.ErrorIs(t, err, ErrExpired)

	// Without a bootstrap key configured, nothing matches an empty key.
	_, err = s.Authenticate(ctx, "")
	require.ErrorIs(t, err, ErrUnknownKey)
}

func TestNewKeyValidation(t *testing.T) {
	require.NoError(t, NewKey{Tenant: "acme", User: "u-1", Role: RoleUser}.Validate())
	require.NoError(t, NewKey{Tenant: AllTenants, User: "root", Role: RoleAdmin}.Validate())
	require.Error(t, NewKey{Tenant: AllTenants, User: "x", Role: RoleUser}.Validate())
	require.Error(t, NewKey{Tenant: "a\x01b", User: "x", Role: RoleUser}.Validate())
	require.NoError(t, NewKey{Tenant: "a b", User: "auth0|x/y", Role: RoleUser}.Validate(), "any printable id")
	require.Error(t, NewKey{Tenant: "a", User: "", Role: RoleUser}.Validate())
	require.Error(t, NewKey{Tenant: "a", User: "x", Role: "root"}.Validate())
}

// The one rule for tenant and user ids, at its edges.
func TestNameRule(t *testing.T) {
	for _, ok := range []string{"u", strings.Repeat("x", MaxNameBytes), "se c'", "u/../x", "a@b.c", "auth0|5f7c", "ü🙂", `"quoted"`, "%2F"} {
		require.True(t, ValidName(ok), "%q", ok)
		require.Empty(t, NameProblem(ok))
	}
	for bad, problem := range map[string]string{
		"":                                  "empty",
		strings.Repeat("x", MaxNameBytes+1): "129 bytes",
		strings.Repeat("ü", 65):             "130 bytes", // 65 two-byte characters
		"a\x00b":                            "control character",
		"tab\there":                         "control character",
		"del\x7f":                           "control character",
		"c1\u0085":                          "control character",
		"\xff\xfe":                          "UTF-8",
	} {
		require.False(t, ValidName(bad), "%q", bad)
		require.Contains(t, NameProblem(bad), problem, "%q", bad)
	}
	require.True(t, ValidName(AllTenants))
	require.False(t, ValidTenant(AllTenants), "* means every tenant in a key")
	require.True(t, ValidTenant("acme"))
}
