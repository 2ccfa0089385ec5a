package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/apimeter/apimeter/plans"
	"github.com/apimeter/apimeter/query"
)

// CostsResponse is GET /costs: a user's bills, newest period first.
type CostsResponse struct {
	Tenant   string       `json:"tenantId"`
	User     string       `json:"userId"`
	Plan     string       `json:"plan"`
	Currency string       `json:"currency"`
	Periods  []plans.Bill `json:"periods"`
}

// costs prices the current billing period and the ones before it
// (periods, 1–24, default 3) on the user's plan, per endpoint.
func (a *Analytics) costs(c echo.Context) error {
	q, err := queryParams(c)
	if err != nil {
		return err
	}
	n, err := intParam(q, "periods", 3, 1, 24)
	if err != nil {
		return err
	}
	tenant, user, err := quotaTarget(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	acct, plan, err := a.Limits.Account(ctx, tenant, user)
	if err != nil {
		return err
	}
	now := a.now()
	periods := plans.Periods(now, acct.AnchorDay, n)
	rows, err := a.Query.BillableUsage(ctx, query.Scope{Tenant: tenant, User: user}, periods[n-1][0], periods[0][1])
	if err != nil {
		return queryError(err)
	}
	r := CostsResponse{Tenant: tenant, User: user, Plan: plan.Name, Currency: plan.Price.Currency, Periods: make([]plans.Bill, 0, n)}
	for _, p := range periods {
		b := plans.BillOf(plan, p[0], p[1], usageIn(rows, p[0], p[1]))
		b.Current = !now.Before(p[0]) && now.Before(p[1])
		r.Periods = append(r.Periods, b)
	}
	return c.JSON(http.StatusOK, r)
}

// usageIn sums rows (of one user) per endpoint over the days in [start, end).
func usageIn(rows []query.BillableRow, start, end time.Time) []plans.EndpointUsage {
	idx := map[string]int{}
	var out []plans.EndpointUsage
	for _, r := range rows {
		if r.Day.Before(start) || !r.Day.Before(end) {
			continue
		}
		i, ok := idx[r.Endpoint]
		if !ok {
			i = len(out)
			idx[r.Endpoint] = i
			out = append(out, plans.EndpointUsage{Endpoint: r.Endpoint})
		}
		out[i].Requests += r.Requests
	}
	return out
}

// billingColumns are the columns of a billing export.
var billingColumns = []string{"tenantId", "userId", "plan", "periodStart", "periodEnd", "current", "currency", "requests",
	"units", "includedRequests", "billableUnits", "monthlyFee", "overage", "total"}

// exportBilling writes a bill per user and billing period overlapping
// the range: one user's, or every user with usage in a tenant admin's
// tenant. CSV, JSON or NDJSON.
func (a *Analytics) exportBilling(c echo.Context, b ExportBody, sc query.Scope, rng query.Range, f query.Filters) error {
	format, err := fixedExport(b, f, "billing", billingColumns, "bill whole periods")
	if err != nil {
		return err
	}
	if sc.Tenant == "" {
		return BadRequest("name the tenant: tenantId")
	}
	ctx := c.Request().Context()
	// Periods are a month or so: read enough days either side of the range.
	rows, err := a.Query.BillableUsage(ctx, sc, rng.Start.AddDate(0, -1, -1), rng.End.AddDate(0, 1, 1))
	if err != nil {
		return queryError(err)
	}
	bills, err := a.billsFor(ctx, sc.Tenant, rows, rng)
	if err != nil {
		return err
	}
	if sc.User != "" && len(bills) == 0 { // a user without usage still has a bill
		bills, err = a.billsFor(ctx, sc.Tenant, []query.BillableRow{{User: sc.User}}, rng)
		if err != nil {
			return err
		}
	}
	name := fmt.Sprintf("apimeter-billing-%s-%s.%s", rng.Start.In(rng.Loc).Format("20060102"), rng.End.In(rng.Loc).Format("20060102"), format.Extension())
	values := func(u userBill) []string {
		return []string{sc.Tenant, u.user, u.bill.Plan, u.bill.PeriodStart.Format(time.RFC3339), u.bill.PeriodEnd.Format(time.RFC3339),
			strconv.FormatBool(u.bill.Current), u.bill.Currency, strconv.FormatUint(u.bill.Requests, 10), u.bill.Units.String(),
			strconv.FormatUint(u.bill.IncludedRequests, 10), u.bill.BillableUnits.String(), u.bill.MonthlyFee.StringFixed(2),
			u.bill.Overage.StringFixed(2), u.bill.Total.StringFixed(2)}
	}
	return writeFixedExport(c, format, name, billingColumns, len(bills),
		func(i int) []string { return values(bills[i]) },
		func(i int) []byte {
			obj := map[string]any{}
			for j, v := range values(bills[i]) {
				obj[billingColumns[j]] = v
			}
			u := bills[i]
			obj["current"], obj["requests"], obj["includedRequests"] = u.bill.Current, u.bill.Requests, u.bill.IncludedRequests
			line, _ := json.Marshal(obj)
			return line
		})
}

type userBill struct {
	user string
	bill plans.Bill
}

// billsFor makes the bills of the users in rows for their periods that
// overlap the range, in user order, oldest period first.
func (a *Analytics) billsFor(ctx context.Context, tenant string, rows []query.BillableRow, rng query.Range) ([]userBill, error) {
	var out []userBill
	for i := 0; i < len(rows); {
		j := i
		for j < len(rows) && rows[j].User == rows[i].User {
			j++
		}
		user := rows[i].User
		acct, plan, err := a.Limits.Account(ctx, tenant, user)
		if err != nil {
			return nil, err
		}
		now := a.now()
		for _, p := range plans.PeriodsOverlapping(rng.Start, rng.End, acct.AnchorDay) {
			b := plans.BillOf(plan, p[0], p[1], usageIn(rows[i:j], p[0], p[1]))
			b.Current = !now.Before(p[0]) && now.Before(p[1])
			out = append(out, userBill{user: user, bill: b})
		}
		i = j
	}
	return out, nil
}
