package api

import (
	"context"
	"errors"
	"net/http"
	"slices"

	"github.com/labstack/echo/v4"

	"github.com/apimeter/apimeter/auth"
	"github.com/apimeter/apimeter/query"
)

// Authenticator resolves API keys (an *auth.Store).
type Authenticator interface {
	Authenticate(ctx context.Context, key string) (auth.Principal, error)
}

const principalKey = "apimeter.principal"

// KeyAuth requires a valid API key (Authorization: Bearer <key>) and
// puts its principal on the request; with admin set it also requires an
// admin key. Keys never reach a log: only the key id does.
func KeyAuth(keys Authenticator, admin bool) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			p, err := authenticate(c, keys)
			if err != nil {
				return err
			}
			if p.Service() {
				return forbidden("a service key decides calls and reports usage (/limits/check, /events); it reads no analytics")
			}
			if admin && !p.Admin() {
				return Errorf(http.StatusForbidden, "permission_denied", "this route needs an admin key")
			}
			setPrincipal(c, p)
			return next(c)
		}
	}
}

// OptionalKeyAuth puts the principal of a valid key on the request and
// lets requests without an Authorization header through anonymously; a
// key that is sent but invalid is still a 401.
func OptionalKeyAuth(keys Authenticator) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if c.Request().Header.Get("Authorization") == "" {
				return next(c)
			}
			p, err := authenticate(c, keys)
			if err != nil {
				return err
			}
			setPrincipal(c, p)
			return next(c)
		}
	}
}

// authFailureKey holds why a request's key was refused, for the guard
// that counts failures (and logs them: callers are all told the same).
const authFailureKey = "apimeter.authFailure"

func authenticate(c echo.Context, keys Authenticator) (auth.Principal, error) {
	key, ok := bearer(c.Request())
	if !ok {
		c.Set(authFailureKey, "missing")
		return auth.Principal{}, Errorf(http.StatusUnauthorized, "unauthenticated", "send an API key: Authorization: Bearer <key>")
	}
	p, err := keys.Authenticate(c.Request().Context(), key)
	var reason string
	switch {
	case err == nil:
		return p, nil
	case errors.Is(err, auth.ErrUnknownKey):
		reason = "unknown"
	case errors.Is(err, auth.ErrRevoked):
		reason = "revoked"
	case errors.Is(err, auth.ErrExpired):
		reason = "expired"
	default:
		return auth.Principal{}, err
	}
	// Unknown, revoked and expired keys get one answer: telling them
	// apart would tell a guesser which keys once existed.
	c.Set(authFailureKey, reason)
	if p.KeyID != "" {
		c.Set("apiKeyId", p.KeyID)
	}
	return auth.Principal{}, Errorf(http.StatusUnauthorized, "unauthenticated", "the API key is not valid")
}

// setPrincipal puts the caller on the request, and its tenant, user and
// key id as the context values usage tracking and limits read.
func setPrincipal(c echo.Context, p auth.Principal) {
	c.Set(principalKey, p)
	c.Set("tenantId", p.Tenant)
	c.Set("userId", p.User)
	c.Set("apiKeyId", p.KeyID)
}

// IsAdmin says the request's key is an admin's: operators are not held
// to plan limits on apimeter's own API.
func IsAdmin(c echo.Context) bool {
	p, ok := principal(c)
	return ok && p.Admin()
}

// Authenticated says the request carries a valid key: apimeter records
// its own API's calls for these only (failed keys and anonymous reads are
// in the metrics, not in anyone's usage).
func Authenticated(c echo.Context) bool {
	_, ok := principal(c)
	return ok
}

// principal is the caller, set by KeyAuth.
func principal(c echo.Context) (auth.Principal, bool) {
	p, ok := c.Get(principalKey).(auth.Principal)
	return p, ok
}

func forbidden(format string, args ...any) *Error {
	return Errorf(http.StatusForbidden, "permission_denied", format, args...)
}

// scopeOf is the data a request may read: a user key its own usage, a
// tenant admin its tenant (narrowed by userId), a global admin every
// tenant (narrowed by tenantId and userId). Asking for more is a 403.
func scopeOf(p auth.Principal, tenant, user string) (query.Scope, error) {
	for name, v := range map[string]string{"tenantId": tenant, "userId": user} {
		if v != "" && !auth.ValidName(v) {
			return query.Scope{}, BadRequest("%s %.140q: want %s", name, v, auth.NameRule)
		}
	}
	switch {
	case !p.Admin():
		if tenant != "" && tenant != p.Tenant || user != "" && user != p.User {
			return query.Scope{}, forbidden("a user key reads only its own usage")
		}
		return query.Scope{Tenant: p.Tenant, User: p.User}, nil
	case p.Global():
		return query.Scope{Tenant: tenant, User: user}, nil
	default:
		if tenant != "" && tenant != p.Tenant {
			return query.Scope{}, forbidden("this key is an admin of tenant %q only", p.Tenant)
		}
		return query.Scope{Tenant: p.Tenant, User: user}, nil
	}
}

// requestScope reads tenantId and userId from the query string.
func requestScope(c echo.Context) (query.Scope, error) {
	q, err := queryParams(c)
	if err != nil {
		return query.Scope{}, err
	}
	p, _ := principal(c)
	tenant, err := single(q, "tenantId")
	if err != nil {
		return query.Scope{}, err
	}
	user, err := single(q, "userId")
	if err != nil {
		return query.Scope{}, err
	}
	return scopeOf(p, tenant, user)
}

// checkUserFilters refuses user filters and userId grouping to user keys
// (beyond their own id).
func checkUserAccess(p auth.Principal, f query.Filters, groupBy []query.Dimension) error {
	if p.Admin() {
		return nil
	}
	for _, u := range f.User {
		if u != p.User {
			return forbidden("a user key reads only its own usage")
		}
	}
	if slices.Contains(groupBy, query.DimUser) {
		return forbidden("grouping by userId needs an admin key")
	}
	return nil
}
