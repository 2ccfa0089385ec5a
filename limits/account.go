package limits

import (
	"context"

	"github.com/apimeter/apimeter/plans"
)

// Account is a user's account and plan, as decisions see them.
func (l *Limiter) Account(ctx context.Context, tenant, user string) (Account, *plans.Plan, error) {
	a, err := l.cfg.Resolver.Resolve(ctx, tenant, user)
	if err != nil {
		return a, nil, err
	}
	return a, l.plans.Resolve(a.Plan), nil
}
