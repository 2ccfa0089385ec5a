package plans

import (
	"fmt"
	"strings"
	"testing"
)

// benchPlans declares 60 routes, an API of ordinary size: resources,
// their items, nested lists and actions, with one catch-all.
func benchPlans(b *testing.B) *Plans {
	var f strings.Builder
	f.WriteString("routes:\n  - /files/*path\n")
	for _, r := range []string{"users", "orders", "invoices", "teams", "projects", "reports", "events", "webhooks", "keys", "plans"} {
		for _, t := range []string{"/api/%s", "/api/%s/:id", "/api/%s/:id/items", "/api/%s/:id/items/:itemId", "/api/%s/:id/export", "/api/%s/search"} {
			fmt.Fprintf(&f, "  - "+t+"\n", r)
		}
	}
	f.WriteString("plans:\n  - name: free\n")
	ps, err := ParsePlans([]byte(f.String()))
	if err != nil {
		b.Fatal(err)
	}
	return ps
}

func BenchmarkRoute(b *testing.B) {
	ps := benchPlans(b)
	for _, c := range []struct{ name, path string }{
		{"declared", "/api/orders/42/items/7"},
		{"declared-query", "/api/orders/42/items/7?expand=lines&page=2"},
		{"declared-literal", "/api/teams/search"},
		{"catch-all", "/files/2026/11/report.pdf"},
		{"default-ids", "/v1/accounts/8812/sessions/0193a3c4-8f0e-7c2a-9d51-6b2f0e8a1c77"},
		{"default-none", "/v1/accounts/settings/notifications"},
		{"template", "/api/orders/:id/items/:itemId"},
		{"percent-encoded", "/v1/docs/caf%C3%A9/7"},
	} {
		want := ps.Route(c.path)
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if ps.Route(c.path) != want {
					b.Fatal("changed")
				}
			}
		})
	}
	b.Run("default-plans", func(b *testing.B) {
		ps := DefaultPlans()
		b.ReportAllocs()
		for b.Loop() {
			ps.Route("/api/orders/42/items/7")
		}
	})
}
