package query

import (
	"context"
	"time"

	"github.com/apimeter/apimeter/forecast"
)

// ForecastDays is the history a quota forecast reads: four weeks for the
// weekly pattern and the trend, and a week more.
const ForecastDays = 35

// QuotaForecast projects a user's quota to its period's end [periodStart,
// periodEnd) from the last ForecastDays of daily usage, counted as quotas
// count it (by cost, refused requests left out). used is what the period
// has counted so far; limit 0 is unlimited.
func (s *Service) QuotaForecast(ctx context.Context, sc Scope, now, periodStart, periodEnd time.Time, limit, used uint64) (forecast.Result, error) {
	now = now.UTC()
	today := now.Truncate(24 * time.Hour)
	from := today.AddDate(0, 0, -ForecastDays)
	rows, err := s.BillableUsage(ctx, sc, from, today.Add(24*time.Hour))
	if err != nil {
		return forecast.Result{}, err
	}
	days := make([]uint64, ForecastDays+1)
	for _, r := range rows {
		if i := int(r.Day.UTC().Sub(from) / (24 * time.Hour)); i >= 0 && i < len(days) {
			days[i] += r.Requests
		}
	}
	return forecast.Project(forecast.Input{Days: days, LastDay: today, TodayElapsed: float64(now.Sub(today)) / float64(24*time.Hour),
		PeriodStart: periodStart, PeriodEnd: periodEnd, Limit: limit, UsedInPeriod: used}), nil
}
