package plans

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const routesYAML = `routes:
  - /api/users/:id
  - /api/orders/:orderId/items/:itemId
  - /files/*path
  - /api/users/me
  - /api/:resource/export
  - /api/reports/*rest
  - /api/reports/:year/summary
  - /docs/café
plans:
  - name: free
    endpoints:
      - path: /api/teams/:teamId/members
        limit: 5
        window: 1m
      - path: /api/users/:id
        limit: 5
        window: 1m
  - name: pro
    endpoints:
      - path: /api/teams/:teamId/members
        limit: 50
        window: 1m
`

func TestRoute(t *testing.T) {
	ps, err := ParsePlans([]byte(routesYAML))
	require.NoError(t, err)
	const uuid = "0193a3c4-8f0e-7c2a-9d51-6b2f0e8a1c77"
	for _, c := range []struct{ path, want, why string }{
		// Declared routes.
		{"/api/users/123", "/api/users/:id", "declared"},
		{"/api/users/me", "/api/users/me", "three literal segments beat two"},
		{"/api/orders/42/items/7", "/api/orders/:orderId/items/:itemId", "declared, two parameters"},
		{"/api/users/export", "/api/users/:id", "two literals each: the first declared"},
		{"/api/invoices/export", "/api/:resource/export", "declared"},
		{"/api/reports/2026/summary", "/api/reports/:year/summary", "three literals beat a catch-all's two"},
		{"/api/reports/2026/q1", "/api/reports/*rest", "catch-all"},
		{"/api/reports/2026", "/api/reports/*rest", "a catch-all takes one segment"},
		{"/files/a/b/c.txt", "/files/*path", "catch-all takes the rest"},
		{"/files/x", "/files/*path", "catch-all, one segment"},
		{"/files", "/files", "a catch-all needs a segment to take"},
		{"/api/teams/9/members", "/api/teams/:teamId/members", "an endpoint limit's path is a route"},
		{"/api/teams/9/invites", "/api/teams/:id/invites", "no route: the default"},
		{"/API/users/5", "/API/users/:id", "literals are case-sensitive"},

		// Query strings, fragments, slashes.
		{"/api/orders/42/items/7?expand=true#top", "/api/orders/:orderId/items/:itemId", "query and fragment stripped"},
		{"/api/users/123/", "/api/users/:id", "trailing slash"},
		{"/api/users/123//", "/api/users/:id", "trailing slashes"},
		{"/files/", "/files", "trailing slash, no route"},
		{"/api//users/5", "/api/users/:id", "empty segments do not count for matching"},
		{"/x//5", "/x//:id", "the default keeps the path as written"},
		{"", "/", "empty"},
		{"/", "/", "root"},
		{"//", "/", "root with slashes"},
		{"?a=1", "/", "only a query"},
		{"#top", "/", "only a fragment"},
		{"api/users/5", "/api/users/:id", "no leading slash"},
		{"https://api.example.com/api/users/5?x=1", "/api/users/:id", "absolute URL"},
		{"http://api.example.com", "/", "absolute URL without a path"},

		// Templates pass through.
		{"/api/users/:userId", "/api/users/:userId", "already a template"},
		{"/api/users/:userId/posts/123", "/api/users/:userId/posts/123", "already a template, as it is"},
		{"/api/users/:id?x=1", "/api/users/:id", "a template's query string is stripped"},
		{"/v1/items:batchGet/5", "/v1/items:batchGet/:id", "a colon inside a segment is no template"},

		// The default rule.
		{"/v1/accounts/8812/invoices/2026", "/v1/accounts/:id/invoices/:id", "numbers"},
		{"/v2/sessions/" + uuid, "/v2/sessions/:id", "UUID"},
		{"/v2/sessions/0193A3C4-8F0E-7C2A-9D51-6B2F0E8A1C77", "/v2/sessions/:id", "UUID, upper case"},
		{"/shop/7/carts/" + uuid + "/lines/507f1f77bcf86cd799439011", "/shop/:id/carts/:id/lines/:id", "mixed: number, UUID, ObjectId"},
		{"/events/01ARZ3NDEKTSV4RRFFQ69G5FAV", "/events/:id", "ULID"},
		{"/events/01arz3ndektsv4rrffq69g5fav", "/events/:id", "ULID, lower case"},
		{"/x/0123456789abcdef", "/x/:id", "16 hex"},
		{"/x/0123456789ABCDEF0123456789abcdef01234567", "/x/:id", "40 hex"},
		{"/x/0123456789abcde", "/x/0123456789abcde", "15 hex: not an id"},
		{"/x/0123456789abcdeg", "/x/0123456789abcdeg", "16 characters, not all hex"},
		{"/x/0193a3c48-f0e-7c2a-9d51-6b2f0e8a1c77", "/x/0193a3c48-f0e-7c2a-9d51-6b2f0e8a1c77", "36 characters, not a UUID's groups"},
		{"/x/81ARZ3NDEKTSV4RRFFQ69G5FAV", "/x/81ARZ3NDEKTSV4RRFFQ69G5FAV", "a ULID starts with 0 to 7"},
		{"/x/01ARZ3NDEKTSV4RRFFQ69G5FAU", "/x/01ARZ3NDEKTSV4RRFFQ69G5FAU", "U is not in a ULID's alphabet"},
		{"/api/v1/users", "/api/v1/users", "no ids"},
		{"/api/abc123", "/api/abc123", "short letters and digits"},
		{"/7", "/:id", "a number at the root"},

		// Percent-encoding: matched decoded, written as declared.
		{"/docs/caf%C3%A9", "/docs/café", "a declared literal, decoded"},
		{"/api/users/%31%32%33", "/api/users/:id", "declared, encoded segment"},
		{"/x/%31%32%33", "/x/:id", "an encoded number is a number"},
		{"/x/a%2Fb/7", "/x/a%2Fb/:id", "an encoded slash stays inside its segment"},
		{"/x/%zz/5", "/x/%zz/:id", "a bad escape is kept as written"},
		{"/api/orders/a%2Fb/items/7", "/api/orders/:orderId/items/:itemId", "an encoded slash does not split a segment"},
	} {
		require.Equal(t, c.want, ps.Route(c.path), "%s: %q", c.why, c.path)
	}
}

func TestDefaultPlansRouteByTheDefaultRule(t *testing.T) {
	ps := DefaultPlans()
	require.Equal(t, "/api/users/:id", ps.Route("/api/users/123"))
	require.Equal(t, "/api/users/me", ps.Route("/api/users/me"))
	require.Equal(t, "/files/:id/raw", ps.Route("/files/507f1f77bcf86cd799439011/raw?dl=1"))
}

func TestRouteAllocations(t *testing.T) {
	ps, err := ParsePlans([]byte(routesYAML))
	require.NoError(t, err)
	for path, want := range map[string]float64{
		"/api/orders/42/items/7?expand=1": 0, // a declared route: its template
		"/api/v1/users":                   0, // no ids: the path itself
		"/api/users/:id":                  0, // a template
		"/v1/accounts/8812/invoices/2026": 1, // the default: one new string
	} {
		require.Equal(t, want, testing.AllocsPerRun(100, func() { ps.Route(path) }), path)
	}
}

func TestRoutesErrorsNameTheLine(t *testing.T) {
	const plans = "plans:\n  - name: a\n"
	for _, c := range []struct{ file, want string }{
		{"routes:\n  - api/x\n" + plans, `line 2: routes[0] "api/x": want a route template starting with /`},
		{"routes:\n  - \"\"\n" + plans, `line 2: routes[0] "": want a route template starting with /`},
		{"routes:\n  - /a//b\n" + plans, `line 2: routes[0] "/a//b": an empty segment`},
		{"routes:\n  - /a/b/\n" + plans, `line 2: routes[0] "/a/b/": drop the trailing slash`},
		{"routes:\n  - /a?b=1\n" + plans, `line 2: routes[0] "/a?b=1": want a path without a query string or fragment`},
		{"routes:\n  - /a#b\n" + plans, `line 2: routes[0] "/a#b": want a path without a query string or fragment`},
		{"routes:\n  - \"/a/:\"\n" + plans, `line 2: routes[0] "/a/:": segment 2 names no parameter`},
		{"routes:\n  - /a/*\n" + plans, `line 2: routes[0] "/a/*": segment 2 names no parameter`},
		{"routes:\n  - /a/%zz\n" + plans, `line 2: routes[0] "/a/%zz": segment 2: a bad percent escape`},
		{"routes:\n  - /docs/café\n  - /docs/caf%C3%A9\n" + plans, `line 3: routes[1] "/docs/caf%C3%A9": matches the same paths as routes[0] "/docs/café" (line 2)`},
		{"routes:\n  - /a/*rest/b\n" + plans, `line 2: routes[0] "/a/*rest/b": a catch-all (*rest) must be the last segment`},
		{"routes:\n  - /a/:id\n  - /b\n  - /a/:name\n" + plans, `line 4: routes[2] "/a/:name": matches the same paths as routes[0] "/a/:id" (line 2)`},
		{"routes:\n  - /a\n  - /a\n" + plans, `line 3: routes[1] "/a": matches the same paths as routes[0] "/a" (line 2)`},
		{"routes: /a\n" + plans, "line 1: cannot unmarshal"},
		{"routes:\n  - /a/:id\n" + plans + "    endpoints:\n      - path: /a/:other\n        limit: 1\n        window: 1m\n",
			`line 6: plans[0].endpoints[0].path "/a/:other": matches the same paths as routes[0] "/a/:id" (line 2)`},
		{plans + "    endpoints:\n      - path: /a//b\n        limit: 1\n        window: 1m\n", `line 4: plans[0].endpoints[0].path "/a//b": an empty segment`},
		{plans + "    endpoints:\n      - path: /t/:a\n        limit: 1\n        window: 1m\n  - name: b\n    endpoints:\n      - path: /t/:b\n        limit: 1\n        window: 1m\n",
			`line 9: plans[1].endpoints[0].path "/t/:b": matches the same paths as plans[0].endpoints[0].path "/t/:a" (line 4)`},
	} {
		_, err := ParsePlans([]byte(c.file))
		require.Error(t, err, c.file)
		require.Contains(t, err.Error(), c.want, c.file)
	}
	// Every problem at once.
	_, err := ParsePlans([]byte("routes:\n  - x\n  - /y/\nplans:\n  - name: a\n    hourlyRequests: -1\n"))
	require.ErrorContains(t, err, "line 2: routes[0]")
	require.ErrorContains(t, err, "line 3: routes[1]")
	require.ErrorContains(t, err, "line 6: plans[0].hourlyRequests")

	// The same template twice as an endpoint limit, and a declared route
	// written the same way, are one route.
	_, err = ParsePlans([]byte("defaultPlan: a\nroutes:\n  - /\n  - /t/:a\n" + plans + "    endpoints:\n      - path: /t/:a\n        limit: 1\n        window: 1m\n      - path: /t/:a\n        method: POST\n        limit: 1\n        window: 1m\n"))
	require.NoError(t, err)
	// An encoded : is a literal, not a parameter.
	ps, err := ParsePlans([]byte("defaultPlan: a\nroutes:\n  - /a/%3A\n" + plans))
	require.NoError(t, err)
	require.Equal(t, "/a/%3A", ps.Route("/a/%3a"))
	require.Equal(t, "/a/b", ps.Route("/a/b"))
	// An encoded slash is part of its segment: two routes, not one.
	_, err = ParsePlans([]byte("defaultPlan: a\nroutes:\n  - /a%2Fb\n  - /a/b\n" + plans))
	require.NoError(t, err)
}

// Route's answer is a route: it starts with /, carries no query string or
// fragment, and routes to itself.
func FuzzRoute(f *testing.F) {
	ps, err := ParsePlans([]byte(routesYAML))
	require.NoError(f, err)
	for _, s := range []string{"/api/users/123", "/files/a/b", "/x/%zz/5", "https://h/api/users/5?x", "//", "", "/api/users/:id?x", "/docs/caf%C3%A9", "a/b//", "/01ARZ3NDEKTSV4RRFFQ69G5FAV/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		got := ps.Route(path)
		require.True(t, strings.HasPrefix(got, "/"), "%q → %q", path, got)
		require.False(t, strings.ContainsAny(got, "?#"), "%q → %q", path, got)
		require.Equal(t, got, ps.Route(got), "%q → %q", path, got)
	})
}
