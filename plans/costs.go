package plans

import (
	"slices"
	"time"

	"github.com/shopspring/decimal"
)

// Bill is what a user's billing period costs on a plan.
type Bill struct {
	PeriodStart time.Time `json:"periodStart"`
	PeriodEnd   time.Time `json:"periodEnd"`
	// Current says the period holds now: its numbers still grow.
	Current  bool   `json:"current"`
	Plan     string `json:"plan"`
	Currency string `json:"currency"`
	Requests uint64 `json:"requests"`
	// Units are the requests weighted by endpoint.
	Units            decimal.Decimal `json:"units"`
	IncludedRequests uint64          `json:"includedRequests"`
	BillableUnits    decimal.Decimal `json:"billableUnits"`
	MonthlyFee       Money           `json:"monthlyFee"`
	Overage          Money           `json:"overage"`
	Total            Money           `json:"total"`
	Endpoints        []EndpointBill  `json:"endpoints"`
}

// Money is an amount in cents, written as a string with two decimals
// ("12.50") so no reader parses it into a float.
type Money struct{ decimal.Decimal }

// MarshalJSON writes the amount as "12.50".
func (m Money) MarshalJSON() ([]byte, error) { return []byte(`"` + m.StringFixed(2) + `"`), nil }

// UnmarshalJSON reads "12.50" (or 12.5).
func (m *Money) UnmarshalJSON(b []byte) error { return m.Decimal.UnmarshalJSON(b) }

func money(d decimal.Decimal) Money { return Money{d.Round(2)} }

// EndpointBill is one endpoint's part of a bill; Overage is the period's
// overage charge shared out by units.
type EndpointBill struct {
	Endpoint string          `json:"endpoint"`
	Requests uint64          `json:"requests"`
	Weight   decimal.Decimal `json:"weight"`
	Units    decimal.Decimal `json:"units"`
	Overage  Money           `json:"overage"`
}

// EndpointUsage is an endpoint's billable requests in a period.
type EndpointUsage struct {
	Endpoint string
	Requests uint64
}

var thousand = decimal.NewFromInt(1000)

// BillOf prices a period's usage on plan p: the monthly fee, then each
// 1,000 units past the included ones at PerThousand. Amounts are rounded
// to cents (half away from zero) at the end; units stay exact.
func BillOf(p *Plan, start, end time.Time, usage []EndpointUsage) Bill {
	b := Bill{PeriodStart: start, PeriodEnd: end, Plan: p.Name, Currency: p.Price.Currency,
		IncludedRequests: p.Price.IncludedRequests, MonthlyFee: money(p.Price.MonthlyFee), Endpoints: []EndpointBill{}}
	for _, u := range usage {
		w := p.Price.Weight(u.Endpoint)
		units := w.Mul(decimal.NewFromUint64(u.Requests))
		b.Requests += u.Requests
		b.Units = b.Units.Add(units)
		b.Endpoints = append(b.Endpoints, EndpointBill{Endpoint: u.Endpoint, Requests: u.Requests, Weight: w, Units: units})
	}
	b.BillableUnits = decimal.Max(decimal.Zero, b.Units.Sub(decimal.NewFromUint64(b.IncludedRequests)))
	overage := b.BillableUnits.Div(thousand).Mul(p.Price.PerThousand)
	b.Overage = money(overage)
	b.Total = money(b.MonthlyFee.Add(b.Overage.Decimal))
	for i := range b.Endpoints {
		e := &b.Endpoints[i]
		if b.Units.IsPositive() {
			e.Overage = money(overage.Mul(e.Units).Div(b.Units))
		}
	}
	slices.SortFunc(b.Endpoints, func(x, y EndpointBill) int {
		if c := y.Units.Cmp(x.Units); c != 0 {
			return c
		}
		if x.Endpoint < y.Endpoint {
			return -1
		}
		return 1
	})
	return b
}
