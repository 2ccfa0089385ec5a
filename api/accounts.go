package api

import (
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/apimeter/apimeter/accounts"
	"github.com/apimeter/apimeter/auth"
)

// AccountsAPI serves the admin routes of accounts: a user's plan, billing
// anchor day and quota mode.
type AccountsAPI struct {
	Store *accounts.Store
	// ValidPlan reports whether a lower-case plan name exists; nil accepts
	// any name.
	ValidPlan func(string) bool
	// OnChange is called after an account is written or deleted, so
	// caches of accounts can drop it; nil for none.
	OnChange func(tenant, user string)
	// Plans names the plans in the error for an unknown one; nil for none.
	Plans func() []string
	log   *slog.Logger
}

// AccountBody is PUT /admin/accounts/:userId. It replaces the account:
// billingAnchorDay 0 or absent is 1, quotaMode absent is the plan's.
type AccountBody struct {
	TenantID  string `json:"tenantId"`
	Plan      string `json:"plan"`
	AnchorDay int    `json:"billingAnchorDay"`
	QuotaMode string `json:"quotaMode"`
}

// AccountList is GET /admin/accounts.
type AccountList struct {
	Accounts []accounts.Account `json:"accounts"`
}

// MountAccounts adds the accounts routes; admin is normally
// KeyAuth(keys, true). A tenant admin reads the accounts of its own
// tenant; only a global admin, naming the tenant, writes or deletes one.
func (s *Server) MountAccounts(a *AccountsAPI, admin echo.MiddlewareFunc) {
	a.log = s.log
	g := s.echo.Group(BasePath + "/admin/accounts")
	g.PUT("/:userId", a.put, admin, planChanges)
	g.GET("", a.list, admin)
	g.GET("/:userId", a.get, admin)
	g.DELETE("/:userId", a.delete, admin, planChanges)
}

// planChanges lets only global admins change accounts: an account sets a
// user's plan and with it the quota, and a tenant admin could otherwise
// put its own users on a larger plan than its tenant pays for.
func planChanges(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if p, ok := principal(c); !ok || !p.Global() {
			return forbidden("changing an account (a user's plan and quota) needs a global admin key (tenant *); " +
				"a tenant admin may read its tenant's accounts")
		}
		return next(c)
	}
}

// accountTenant is the tenant an admin's request acts on: a tenant admin's
// own (naming it is optional, and it only reads), the one a global admin
// names.
func accountTenant(c echo.Context, tenant string) (string, error) {
	p, ok := principal(c)
	switch {
	case !ok || !p.Admin():
		return "", forbidden("accounts need an admin key")
	case p.Global():
		if tenant == "" {
			return "", BadRequest("tenantId: name the account's tenant")
		}
		return tenant, nil
	case tenant == "":
		return p.Tenant, nil
	case tenant != p.Tenant:
		return "", forbidden("this key is an admin of tenant %q only", p.Tenant)
	}
	return tenant, nil
}

// target reads the account a GET or DELETE names: userId from the path,
// tenantId from the query string.
func (a *AccountsAPI) target(c echo.Context) (tenant, user string, err error) {
	q, err := queryParams(c)
	if err != nil {
		return "", "", err
	}
	if tenant, err = single(q, "tenantId"); err != nil {
		return "", "", err
	}
	if tenant, err = accountTenant(c, tenant); err != nil {
		return "", "", err
	}
	if !auth.ValidTenant(tenant) {
		return "", "", BadRequest("tenantId %.140q: want %s", tenant, auth.NameRule)
	}
	if user, err = pathUser(c); err != nil {
		return "", "", err
	}
	return tenant, user, nil
}

func pathUser(c echo.Context) (string, error) {
	user, err := url.PathUnescape(c.Param("userId"))
	if err != nil || !auth.ValidName(user) {
		return "", BadRequest("userId %.140q in the path: want %s, URL-encoded", c.Param("userId"), auth.NameRule)
	}
	return user, nil
}

func notFound(tenant, user string) *Error {
	return Errorf(http.StatusNotFound, "not_found", "no account for user %q of tenant %q", user, tenant)
}

// put creates or replaces an account.
func (a *AccountsAPI) put(c echo.Context) error {
	var b AccountBody
	if err := decodeBody(c, &b); err != nil {
		return err
	}
	var noUser string // the path names the user
	if err := queryScope(c, &b.TenantID, &noUser); err != nil {
		return err
	}
	tenant, err := accountTenant(c, b.TenantID)
	if err != nil {
		return err
	}
	user, err := url.PathUnescape(c.Param("userId"))
	if err != nil {
		user = c.Param("userId")
	}
	acct := accounts.Account{Tenant: tenant, User: user, Plan: b.Plan, AnchorDay: b.AnchorDay, QuotaMode: b.QuotaMode}
	if err := acct.Validate(a.ValidPlan); err != nil {
		msg := err.Error()
		if b.Plan != "" && a.ValidPlan != nil && !a.ValidPlan(strings.ToLower(b.Plan)) && a.Plans != nil {
			msg += "\nplans: " + strings.Join(a.Plans(), ", ")
		}
		return BadRequest("%s", msg)
	}
	acct, err = a.Store.Put(c.Request().Context(), acct)
	if err != nil {
		return err
	}
	p, _ := principal(c)
	a.log.Info("account saved", "tenantId", acct.Tenant, "userId", acct.User, "plan", acct.Plan,
		"billingAnchorDay", acct.AnchorDay, "quotaMode", acct.QuotaMode, "by", p.KeyID)
	if a.OnChange != nil {
		a.OnChange(acct.Tenant, acct.User)
	}
	return c.JSON(http.StatusOK, acct)
}

// list lists the accounts of the admin's tenant (a global admin: of every
// tenant, or of one with tenantId), optionally of one plan.
func (a *AccountsAPI) list(c echo.Context) error {
	q, err := queryParams(c)
	if err != nil {
		return err
	}
	tenant, err := single(q, "tenantId")
	if err != nil {
		return err
	}
	plan, err := single(q, "plan")
	if err != nil {
		return err
	}
	if p, ok := principal(c); ok && p.Global() && tenant == "" {
		tenant = auth.AllTenants
	} else if tenant, err = accountTenant(c, tenant); err != nil {
		return err
	}
	if tenant != auth.AllTenants && !auth.ValidName(tenant) {
		return BadRequest("tenantId %.140q: want %s", tenant, auth.NameRule)
	}
	list, err := a.Store.List(c.Request().Context(), tenant, plan)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, AccountList{Accounts: list})
}

// get returns one account.
func (a *AccountsAPI) get(c echo.Context) error {
	tenant, user, err := a.target(c)
	if err != nil {
		return err
	}
	acct, ok, err := a.Store.Get(c.Request().Context(), tenant, user)
	if err != nil {
		return err
	}
	if !ok {
		return notFound(tenant, user)
	}
	return c.JSON(http.StatusOK, acct)
}

// delete removes an account; the user is then on the default plan.
func (a *AccountsAPI) delete(c echo.Context) error {
	tenant, user, err := a.target(c)
	if err != nil {
		return err
	}
	deleted, err := a.Store.Delete(c.Request().Context(), tenant, user)
	if err != nil {
		return err
	}
	if !deleted {
		return notFound(tenant, user)
	}
	p, _ := principal(c)
	a.log.Info("account deleted", "tenantId", tenant, "userId", user, "by", p.KeyID)
	if a.OnChange != nil {
		a.OnChange(tenant, user)
	}
	return c.NoContent(http.StatusNoContent)
}
