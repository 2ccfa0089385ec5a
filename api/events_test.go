package api

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/apimeter/apimeter/auth"
	"github.com/apimeter/apimeter/ingest"
)

type sink struct {
	mu  sync.Mutex
	got []string
}

func (s *sink) TrackRaw(b []byte) {
	s.mu.Lock()
	s.got = append(s.got, string(b))
	s.mu.Unlock()
}

func postEvents(s *Server, body, key string) (*httptest.ResponseRecorder, map[string]any) {
	req := httptest.NewRequest(http.MethodPost, "/api/api-usage/events", strings.NewReader(body))
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	rec := httptest.NewRecorder()
	s.Echo().ServeHTTP(rec, req)
	var out map[string]any
	json.Unmarshal(rec.Body.Bytes(), &out)
	return rec, out
}

func TestEventsForwardsValidRecords(t *testing.T) {
	srv := newTestServer(nil)
	sk := &sink{}
	const key = "am_global-admin"
	keys := fakeKeys{key: {KeyID: "k1", Tenant: auth.AllTenants, User: "admin", Role: auth.RoleAdmin},
		"am_acme-admin": {KeyID: "k2", Tenant: "acme", User: "boss", Role: auth.RoleAdmin},
		"am_acme-user":  {KeyID: "k3", Tenant: "acme", User: "u", Role: auth.RoleUser}}
	srv.MountEvents(sk, ingest.Policy{}, KeyAuth(keys, true))
	good := `{"id":"a","userId":"u","endpoint":"/x","method":"GET","statusCode":200,"responseTimeMs":3}`

	rec, _ := postEvents(srv, good, "")
	require.Equal(t, http.StatusUnauthorized, rec.Code)
	rec, _ = postEvents(srv, good, "wrong-key")
	require.Equal(t, http.StatusUnauthorized, rec.Code)

	rec, body := postEvents(srv, good, key)
	require.Equal(t, http.StatusAccepted, rec.Code, rec.Body.String())
	require.Equal(t, 1.0, body["accepted"])
	require.Equal(t, []string{good}, sk.got)

	batch := `[` + good + `, {"userId":"u","statusCode":999}, {"type":"feature","userId":"u","feature":"f","quantity":2}, "nope"]`
	rec, body = postEvents(srv, batch, key)
	require.Equal(t, http.StatusAccepted, rec.Code, rec.Body.String())
	require.Equal(t, 2.0, body["accepted"])
	rej := body["rejected"].([]any)
	require.Len(t, rej, 2)
	require.Equal(t, map[string]any{"index": 1.0, "reason": "missing_field", "field": "endpoint", "message": "required"}, rej[0])
	require.Equal(t, "not_an_object", rej[1].(map[string]any)["reason"])
	require.Len(t, sk.got, 3)

	rec, body = postEvents(srv, `[{"userId":"u"}]`, key)
	require.Equal(t, http.StatusBadRequest, rec.Code)
	require.Equal(t, "invalid_argument", body["error"].(map[string]any)["code"])
	require.Len(t, body["error"].(map[string]any)["details"], 1)

	for _, bad := range []string{``, `[]`, `[1,`, `{"userId":`} {
		rec, _ = postEvents(srv, bad, key)
		require.Equal(t, http.StatusBadRequest, rec.Code, bad)
	}
	rec, _ = postEvents(srv, `[`+strings.Repeat(good+",", maxEventsRecords)+good+`]`, key)
	require.Equal(t, http.StatusBadRequest, rec.Code)
	rec, _ = postEvents(srv, strings.Repeat(" ", maxEventsBody+1), key)
	require.Equal(t, http.StatusRequestEntityTooLarge, rec.Code)

	// A tenant admin sends its own tenant's records only; user keys none.
	sk.got = nil
	acme := `{"id":"b","tenantId":"acme","userId":"u","endpoint":"/x","method":"GET","statusCode":200,"responseTimeMs":3}`
	rec, body = postEvents(srv, `[`+acme+`,`+good+`]`, "am_acme-admin")
	require.Equal(t, http.StatusAccepted, rec.Code, rec.Body.String())
	require.Equal(t, 1.0, body["accepted"])
	require.Equal(t, "forbidden_tenant", body["rejected"].([]any)[0].(map[string]any)["reason"])
	require.Equal(t, []string{acme}, sk.got)
	rec, _ = postEvents(srv, acme, "am_acme-user")
	require.Equal(t, http.StatusForbidden, rec.Code)
}

// fakeKeys authenticates a fixed set of keys.
type fakeKeys map[string]auth.Principal

func (f fakeKeys) Authenticate(_ context.Context, key string) (auth.Principal, error) {
	if p, ok := f[key]; ok {
		return p, nil
	}
	return auth.Principal{}, auth.ErrUnknownKey
}
