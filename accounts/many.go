package accounts

import (
	"context"
	"fmt"

	"github.com/apimeter/apimeter/limits"
	"github.com/apimeter/apimeter/store"
)

// ResolveMany implements limits.ManyResolver: the accounts of many users
// in one query (users without one get limits.Account{}), for the
// limiter counting a stored batch's calls.
func (s *Store) ResolveMany(ctx context.Context, users [][2]string) (map[[2]string]limits.Account, error) {
	out := make(map[[2]string]limits.Account, len(users))
	if len(users) == 0 {
		return out, nil
	}
	tenants := map[string]bool{}
	var ts, us []string
	for _, u := range users {
		out[u] = limits.Account{}
		if !tenants[u[0]] {
			tenants[u[0]] = true
			ts = append(ts, u[0])
		}
		us = append(us, u[1])
	}
	rows, err := s.db.Query(ctx, `SELECT `+columns+` FROM accounts FINAL
		WHERE tenant_id IN {tenants:Array(String)} AND user_id IN {users:Array(String)} AND deleted = 0`,
		store.Named("tenants", ts), store.Named("users", us))
	if err != nil {
		return nil, fmt.Errorf("read accounts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		a, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("read accounts: %w", err)
		}
		k := [2]string{a.Tenant, a.User}
		if _, asked := out[k]; asked {
			out[k] = limits.Account{Plan: a.Plan, AnchorDay: a.AnchorDay, QuotaMode: a.QuotaMode}
		}
	}
	return out, rows.Err()
}
