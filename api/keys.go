package api

import (
	"errors"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/apimeter/apimeter/auth"
	"github.com/apimeter/apimeter/schema"
)

// KeyBody is POST /admin/keys.
type KeyBody struct {
	TenantID  string     `json:"tenantId"`
	UserID    string     `json:"userId"`
	Role      string     `json:"role"`
	Name      string     `json:"name"`
	ExpiresAt *time.Time `json:"expiresAt"`
}

// CreatedKey is the answer to POST /admin/keys: the only time the secret
// is shown.
type CreatedKey struct {
	auth.Key
	Secret string `json:"key"`
}

// createKey issues a key. A tenant admin issues keys of its own tenant
// only; a global admin names the tenant ("*" for another global admin).
func (a *Analytics) createKey(c echo.Context) error {
	var b KeyBody
	if err := decodeBody(c, &b); err != nil {
		return err
	}
	p, _ := principal(c)
	if b.Role == "" {
		b.Role = auth.RoleUser
	}
	switch {
	case p.Global():
		if b.TenantID == "" {
			return BadRequest("tenantId: name the key's tenant (* for an admin of every tenant)")
		}
	case b.TenantID == "":
		b.TenantID = p.Tenant
	case b.TenantID != p.Tenant:
		return forbidden("this key is an admin of tenant %q only", p.Tenant)
	}
	if b.ExpiresAt != nil && !schema.InDateSpan(*b.ExpiresAt) {
		return BadRequest("expiresAt %s: out of range: times go from %s", b.ExpiresAt.Format(time.RFC3339Nano), schema.DateSpan)
	}
	if b.ExpiresAt != nil && !b.ExpiresAt.After(a.now()) {
		return BadRequest("expiresAt %s is in the past", b.ExpiresAt.Format(time.RFC3339))
	}
	n := auth.NewKey{Tenant: b.TenantID, User: b.UserID, Role: b.Role, Name: b.Name, ExpiresAt: b.ExpiresAt}
	if err := n.Validate(); err != nil {
		return BadRequest("%v", err)
	}
	k, secret, err := a.Keys.Create(c.Request().Context(), n)
	if err != nil {
		return err
	}
	a.log.Info("api key created", "keyId", k.ID, "tenantId", k.Tenant, "userId", k.User, "role", k.Role, "by", p.KeyID)
	return c.JSON(http.StatusCreated, CreatedKey{Key: k, Secret: secret})
}

// listKeys lists the keys of the admin's tenant (a global admin: every
// tenant's, or one tenant's with tenantId).
func (a *Analytics) listKeys(c echo.Context) error {
	sc, err := requestScope(c)
	if err != nil {
		return err
	}
	tenant := sc.Tenant
	if tenant == "" {
		tenant = auth.AllTenants
	}
	keys, err := a.Keys.List(c.Request().Context(), tenant)
	if err != nil {
		return err
	}
	if sc.User != "" {
		mine := []auth.Key{}
		for _, k := range keys {
			if k.User == sc.User {
				mine = append(mine, k)
			}
		}
		keys = mine
	}
	return c.JSON(http.StatusOK, map[string]any{"keys": keys})
}

// revokeKey revokes a key; another tenant's key is reported as not found,
// so admins cannot probe for key ids.
func (a *Analytics) revokeKey(c echo.Context) error {
	p, _ := principal(c)
	id := c.Param("keyId")
	ctx := c.Request().Context()
	k, _, err := a.Keys.Get(ctx, id)
	if errors.Is(err, auth.ErrNotFound) || err == nil && !p.Global() && k.Tenant != p.Tenant {
		return Errorf(http.StatusNotFound, "not_found", "no key %q", id)
	}
	if err != nil {
		return err
	}
	if k, err = a.Keys.Revoke(ctx, id); err != nil {
		return err
	}
	a.log.Info("api key revoked", "keyId", k.ID, "by", p.KeyID)
	return c.JSON(http.StatusOK, k)
}
