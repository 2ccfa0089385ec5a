package forecast

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func date(y int, m time.Month, d int) time.Time {
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

func constant(n int, v uint64) []uint64 {
	s := make([]uint64, n)
	for i := range s {
		s[i] = v
	}
	return s
}

func TestConstantSeries(t *testing.T) {
	// 30 complete days of 100, then today (Wed 2025-03-12) half over with 50.
	days := append(constant(30, 100), 50)
	in := Input{
		Days:         days,
		LastDay:      date(2025, 3, 12).Add(13 * time.Hour),
		TodayElapsed: 0.5,
		PeriodStart:  date(2025, 3, 1),
		PeriodEnd:    date(2025, 4, 1),
		Limit:        2050,
		UsedInPeriod: 11*100 + 50, // March 1..11 plus today so far
	}
	res := Project(in)
	// Rest of today: 50; March 13..31: 19 days of 100.
	assert.Equal(t, uint64(1150+50+1900), res.ProjectedAtPeriodEnd)
	assert.InDelta(t, 100, res.DailyRate, 1e-9)
	assert.True(t, res.Confident)
	assert.Equal(t, Method, res.Method)
	// 1200 at the end of today, +100 a day: 2000 on the 20th, 2100 on the 21st.
	require.NotNil(t, res.RunsOutAt)
	assert.Equal(t, date(2025, 3, 21), *res.RunsOutAt)

	// Exactly reaching the limit counts as running out.
	in.Limit = 2000
	res = Project(in)
	require.NotNil(t, res.RunsOutAt)
	assert.Equal(t, date(2025, 3, 20), *res.RunsOutAt)

	// A limit beyond the projection is not reached within the period.
	in.Limit = 3101
	assert.Nil(t, Project(in).RunsOutAt)
}

func TestLinearTrend(t *testing.T) {
	value := func(i int) float64 { return 100 + 5*float64(i) }
	// Days 0..39 complete, day 40 is today (2025-05-10) with nothing yet.
	days := make([]uint64, 41)
	for i := range 40 {
		days[i] = uint64(value(i))
	}
	today := date(2025, 5, 10)
	// May 1 is day 31; the period ends after May 29 (day 59).
	var used, rest float64
	for i := 31; i < 40; i++ {
		used += value(i)
	}
	for i := 40; i <= 59; i++ {
		rest += value(i)
	}
	res := Project(Input{
		Days:         days,
		LastDay:      today,
		TodayElapsed: 0,
		PeriodStart:  date(2025, 5, 1),
		PeriodEnd:    date(2025, 5, 30),
		UsedInPeriod: uint64(used),
	})
	got := float64(res.ProjectedAtPeriodEnd) - used
	t.Logf("linear trend: forecast %.0f, exact %.0f (%.2f%%)", got, rest, 100*(got-rest)/rest)
	assert.InEpsilon(t, rest, got, 0.05)
	assert.Nil(t, res.RunsOutAt)
}

func TestWeeklyPattern(t *testing.T) {
	value := func(d time.Time) float64 {
		if wd := d.Weekday(); wd == time.Saturday || wd == time.Sunday {
			return 50
		}
		return 200
	}
	today := date(2025, 6, 11) // a Wednesday
	const n = 42
	days := make([]uint64, n+1)
	for i := range n {
		days[i] = uint64(value(today.AddDate(0, 0, i-n)))
	}
	days[n] = uint64(0.25 * value(today))
	var used float64
	for d := date(2025, 6, 1); d.Before(today); d = d.AddDate(0, 0, 1) {
		used += value(d)
	}
	used += float64(days[n])
	rest := 0.75 * value(today)
	for d := today.AddDate(0, 0, 1); d.Before(date(2025, 7, 1)); d = d.AddDate(0, 0, 1) {
		rest += value(d)
	}
	res := Project(Input{
		Days:         days,
		LastDay:      today,
		TodayElapsed: 0.25,
		PeriodStart:  date(2025, 6, 1),
		PeriodEnd:    date(2025, 7, 1),
		UsedInPeriod: uint64(used),
	})
	got := float64(res.ProjectedAtPeriodEnd) - used
	t.Logf("weekly pattern: forecast %.0f, exact %.0f (%.2f%%)", got, rest, 100*(got-rest)/rest)
	assert.InEpsilon(t, rest, got, 0.03)

	// The weekday factors themselves: 200 and 50 over a mean of 1100/7.
	m := fit(days[:n], today.AddDate(0, 0, -1))
	assert.InEpsilon(t, 200/(1100.0/7), m.season[time.Monday], 0.03)
	assert.InEpsilon(t, 50/(1100.0/7), m.season[time.Sunday], 0.03)
}

func TestShortBurstIsDamped(t *testing.T) {
	// 25 quiet days, then three days at ten times the usual volume.
	days := append(constant(25, 100), 1000, 1000, 1000, 0)
	res := Project(Input{
		Days:        days,
		LastDay:     date(2025, 1, 29),
		PeriodStart: date(2025, 1, 1),
		PeriodEnd:   date(2025, 3, 1),
	})
	t.Logf("burst: projected %d", res.ProjectedAtPeriodEnd)
	// 31 remaining days: even holding the burst level flat gives 31000.
	assert.Less(t, float64(res.ProjectedAtPeriodEnd), 31000.0)
}

func TestUnlimited(t *testing.T) {
	res := Project(Input{
		Days:         append(constant(20, 100), 0),
		LastDay:      date(2025, 3, 12),
		PeriodStart:  date(2025, 3, 1),
		PeriodEnd:    date(2025, 4, 1),
		UsedInPeriod: 1_000_000,
	})
	assert.Nil(t, res.RunsOutAt)
	assert.Equal(t, uint64(1_000_000+20*100), res.ProjectedAtPeriodEnd)
	b, err := json.Marshal(res)
	require.NoError(t, err)
	assert.NotContains(t, string(b), "runsOutAt")
}

func TestAlreadyOverLimit(t *testing.T) {
	res := Project(Input{
		Days:         append(constant(20, 100), 40),
		LastDay:      date(2025, 3, 12).Add(9 * time.Hour),
		TodayElapsed: 0.4,
		PeriodStart:  date(2025, 3, 1),
		PeriodEnd:    date(2025, 4, 1),
		Limit:        1000,
		UsedInPeriod: 1140,
	})
	require.NotNil(t, res.RunsOutAt)
	assert.Equal(t, date(2025, 3, 12), *res.RunsOutAt)
	b, err := json.Marshal(res)
	require.NoError(t, err)
	assert.Contains(t, string(b), `"runsOutAt":"2025-03-12T00:00:00Z"`)
}

func TestFewDaysNotConfident(t *testing.T) {
	in := Input{
		Days:        append(constant(6, 100), 10),
		LastDay:     date(2025, 3, 12),
		PeriodStart: date(2025, 3, 1),
		PeriodEnd:   date(2025, 4, 1),
	}
	assert.False(t, Project(in).Confident)
	in.Days = append(constant(7, 100), 10)
	assert.True(t, Project(in).Confident)
}

func TestEmptyHistory(t *testing.T) {
	res := Project(Input{})
	assert.Equal(t, uint64(0), res.ProjectedAtPeriodEnd)
	assert.Nil(t, res.RunsOutAt)
	assert.False(t, res.Confident)

	res = Project(Input{
		LastDay:      date(2025, 3, 12),
		PeriodStart:  date(2025, 3, 1),
		PeriodEnd:    date(2025, 4, 1),
		Limit:        500,
		UsedInPeriod: 123,
	})
	assert.Equal(t, uint64(123), res.ProjectedAtPeriodEnd)
	assert.Nil(t, res.RunsOutAt)
	assert.Zero(t, res.DailyRate)

	// Only today's partial count: extrapolated from the elapsed fraction.
	res = Project(Input{
		Days:         []uint64{30},
		LastDay:      date(2025, 3, 30),
		TodayElapsed: 0.5,
		PeriodStart:  date(2025, 3, 1),
		PeriodEnd:    date(2025, 4, 1),
		UsedInPeriod: 30,
	})
	assert.Equal(t, uint64(30+30+60), res.ProjectedAtPeriodEnd)
	assert.False(t, res.Confident)
}

func TestPeriodOver(t *testing.T) {
	res := Project(Input{
		Days:         append(constant(30, 100), 10),
		LastDay:      date(2025, 4, 2),
		PeriodStart:  date(2025, 3, 1),
		PeriodEnd:    date(2025, 4, 1),
		UsedInPeriod: 3100,
		Limit:        5000,
	})
	assert.Equal(t, uint64(3100), res.ProjectedAtPeriodEnd)
	assert.Nil(t, res.RunsOutAt)
}

func TestBacktest(t *testing.T) {
	r := rand.New(rand.NewPCG(20250101, 7))
	start := date(2025, 1, 1)
	const n = 180
	series := make([]uint64, n)
	for i := range series {
		season := 1.2
		if wd := start.AddDate(0, 0, i).Weekday(); wd == time.Saturday || wd == time.Sunday {
			season = 0.5
		}
		v := (1000 + 8*float64(i)) * season * (1 + 0.1*r.NormFloat64())
		series[i] = uint64(math.Max(0, math.Round(v)))
	}
	mape, cuts := Backtest(series, start, 14)
	t.Logf("backtest: MAPE %.2f%% over %d cuts (14-day horizon, trend + weekly seasonality + 10%% noise)", mape, cuts)
	assert.Equal(t, n-28-14+1, cuts)
	assert.Less(t, mape, 10.0)

	_, cuts = Backtest(series[:30], start, 14)
	assert.Zero(t, cuts)
	_, cuts = Backtest(series, start, 0)
	assert.Zero(t, cuts)
}
