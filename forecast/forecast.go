// Package forecast projects a user's request count to the end of the billing
// period and estimates the UTC day on which the quota is used up.
//
// # Method
//
// The input is a daily series of request counts (UTC days, oldest first). The
// last element is today's partial count; every earlier element is a complete
// day. Only complete days are used to fit the model, which has three parts:
//
//  1. Weekly seasonality. Over the most recent whole weeks of complete days,
//     at most the last 4 (28 days), a least-squares line is fitted to the raw
//     counts and each day's ratio count/line is taken (detrending first keeps
//     a steady growth from masquerading as a weekday effect). A weekday's
//     factor is the mean of its ratios, and the seven factors are rescaled so
//     that their mean is 1, i.e. each factor is that weekday's mean over the
//     overall mean. With fewer than 2 whole weeks of history every factor is 1.
//  2. Trend. The counts are deseasonalised (divided by their weekday's factor)
//     and a least-squares line is fitted to the last 28 complete days (or all
//     of them when fewer, and only with at least 7); its slope is the trend b.
//  3. Level. An exponentially weighted mean (alpha = 0.25, so the weights
//     halve about every 2.4 days) of the last 14 deseasonalised complete days.
//     An EWMA is used rather than a median because it reacts within days to a
//     genuine change of volume while still averaging out daily noise; its lag
//     under a trend is removed by adding b times the weighted mean age of the
//     days, so the level estimates the last complete day itself.
//
// The forecast for the day h days after the last complete day (today is h = 1)
// is
//
//	max(0, (level + T(h)) * season[weekday]),  T(h) = b * (phi + phi^2 + ... + phi^h)
//
// with the damping factor phi = 0.97, so the trend's total contribution is
// bounded (a short burst cannot extrapolate without limit); T(h) is further
// clamped to [-level, +level]. Today's remaining traffic is today's forecast
// times (1 - elapsed fraction of today); the projection at the end of the
// period is the usage so far plus the forecast for the rest of today and for
// every remaining day of the period. When there is no complete day at all but
// at least a tenth of today has elapsed, today's partial count divided by the
// elapsed fraction serves as the level.
package forecast

import (
	"math"
	"time"
)

// Method is the short name reported in Result.Method.
const Method = "ewma14+damped-ls28+weekly4"

const (
	levelWindow      = 14   // complete days in the level's EWMA
	levelAlpha       = 0.25 // EWMA smoothing factor
	trendWindow      = 28   // complete days in the trend's least-squares fit
	minTrendDays     = 7    // fewer complete days: no trend
	seasonWindow     = 28   // at most 4 whole weeks for the weekday factors
	minSeasonDays    = 14   // fewer than 2 whole weeks: all factors are 1
	dampingPhi       = 0.97 // per-day damping of the trend
	minConfidentDays = 7    // fewer complete days: Result.Confident is false
	minSeasonFactor  = 1e-3 // weekdays below this carry no usable signal
	minTodayElapsed  = 0.1  // partial-day extrapolation needs this much of today
	backtestMinHist  = 28   // complete days of history before a backtest cut
)

// Input describes one user's recent traffic and billing period.
type Input struct {
	// Days holds daily request counts, oldest first: complete UTC days,
	// then today's partial count as the last element.
	Days []uint64
	// LastDay is the UTC date of the last element of Days (today).
	LastDay time.Time
	// TodayElapsed is the fraction of today already elapsed, 0..1.
	TodayElapsed float64
	// PeriodStart and PeriodEnd bound the billing period [start, end),
	// both UTC midnights.
	PeriodStart, PeriodEnd time.Time
	// Limit is the period's quota; 0 means unlimited.
	Limit uint64
	// UsedInPeriod is the number of requests counted so far in the period.
	UsedInPeriod uint64
}

// Result is the projection for the rest of the billing period.
type Result struct {
	// ProjectedAtPeriodEnd is the expected request count at the period's end.
	ProjectedAtPeriodEnd uint64 `json:"projectedAtPeriodEnd"`
	// RunsOutAt is the UTC day on which the projection reaches Limit within
	// the period; nil when it does not or when the quota is unlimited. When
	// the limit is already reached it is today.
	RunsOutAt *time.Time `json:"runsOutAt,omitempty"`
	// DailyRate is the forecast's mean per day over the rest of the period
	// (today's remainder counts as its fraction of a day).
	DailyRate float64 `json:"dailyRate"`
	// Method is a short name of the forecasting method.
	Method string `json:"method"`
	// Confident is false with fewer than 7 complete days of history.
	Confident bool `json:"confident"`
}

// Project forecasts the usage at the end of the billing period and the day
// the quota runs out.
func Project(in Input) Result {
	res := Result{Method: Method}
	today := midnight(in.LastDay)
	var complete []uint64
	if len(in.Days) > 0 {
		complete = in.Days[:len(in.Days)-1]
	}
	elapsed := in.TodayElapsed
	if math.IsNaN(elapsed) || elapsed < 0 {
		elapsed = 0
	}
	if elapsed > 1 {
		elapsed = 1
	}

	m := fit(complete, today.AddDate(0, 0, -1))
	if len(complete) == 0 && len(in.Days) == 1 && elapsed >= minTodayElapsed {
		m.level = float64(in.Days[0]) / elapsed
	}
	res.Confident = len(complete) >= minConfidentDays

	start, end := midnight(in.PeriodStart), midnight(in.PeriodEnd)
	used := float64(in.UsedInPeriod)
	limit := float64(in.Limit)
	if in.Limit > 0 && in.UsedInPeriod >= in.Limit {
		d := today
		res.RunsOutAt = &d
	}

	var total, span float64
	cum := used
	h := 1
	for d := today; d.Before(end); d = d.AddDate(0, 0, 1) {
		if !d.Before(start) {
			frac := 1.0
			if h == 1 {
				frac = 1 - elapsed
			}
			v := m.at(h) * frac
			total += v
			span += frac
			cum += v
			if in.Limit > 0 && res.RunsOutAt == nil && cum >= limit {
				day := d
				res.RunsOutAt = &day
			}
		}
		h++
	}
	res.ProjectedAtPeriodEnd = in.UsedInPeriod + uint64(math.Round(total))
	if span > 0 {
		res.DailyRate = total / span
	}
	return res
}

// Backtest replays the model over series (complete daily counts, series[0]
// on the UTC date start). For every cut point c with at least 28 days of
// history and horizon days after it, the model is fitted to series[:c] and
// the sum of its forecasts for the next horizon days is compared with the
// actual sum. It returns the mean absolute percentage error of those sums, in
// percent (4.2 means 4.2 %), and the number of cuts evaluated; cuts whose
// actual sum is zero are skipped since their percentage error is undefined.
func Backtest(series []uint64, start time.Time, horizon int) (mape float64, n int) {
	if horizon <= 0 {
		return 0, 0
	}
	start = midnight(start)
	var sum float64
	for c := backtestMinHist; c+horizon <= len(series); c++ {
		m := fit(series[:c], start.AddDate(0, 0, c-1))
		var pred, actual float64
		for h := 1; h <= horizon; h++ {
			pred += m.at(h)
			actual += float64(series[c+h-1])
		}
		if actual == 0 {
			continue
		}
		sum += math.Abs(pred-actual) / actual
		n++
	}
	if n == 0 {
		return 0, 0
	}
	return 100 * sum / float64(n), n
}

// model is a fitted forecast anchored at the last complete day.
type model struct {
	level  float64
	slope  float64
	season [7]float64 // indexed by time.Weekday
	last   time.Time  // UTC date of the last complete day
}

// at returns the forecast for the day h days after m.last.
func (m model) at(h int) float64 {
	damp := dampingPhi * (1 - math.Pow(dampingPhi, float64(h))) / (1 - dampingPhi)
	tr := m.slope * damp
	tr = math.Max(-m.level, math.Min(m.level, tr))
	v := (m.level + tr) * m.season[m.last.AddDate(0, 0, h).Weekday()]
	return math.Max(0, v)
}

// fit builds the model from complete daily counts; days[len(days)-1] falls
// on the UTC date last.
func fit(days []uint64, last time.Time) model {
	m := model{last: midnight(last)}
	for i := range m.season {
		m.season[i] = 1
	}
	n := len(days)
	if n == 0 {
		return m
	}
	weekday := func(i int) time.Weekday { return m.last.AddDate(0, 0, i-(n-1)).Weekday() }

	// Weekly seasonality over the last whole weeks (at most 4).
	if ns := min(seasonWindow, n/7*7); ns >= minSeasonDays {
		off := n - ns
		xs := make([]float64, ns)
		ys := make([]float64, ns)
		var mean float64
		for i := range ns {
			xs[i] = float64(i)
			ys[i] = float64(days[off+i])
			mean += ys[i]
		}
		mean /= float64(ns)
		if mean > 0 {
			a, b, _ := leastSquares(xs, ys)
			var sum [7]float64
			var cnt [7]int
			for i := range ns {
				base := a + b*xs[i]
				if base < mean/4 {
					base = mean // the line is unreliable this close to zero
				}
				wd := weekday(off + i)
				sum[wd] += ys[i] / base
				cnt[wd]++
			}
			var f [7]float64
			var fmean float64
			for wd := range f {
				if cnt[wd] > 0 {
					f[wd] = sum[wd] / float64(cnt[wd])
				}
				fmean += f[wd]
			}
			fmean /= 7
			if fmean > 0 {
				for wd := range f {
					m.season[wd] = f[wd] / fmean
				}
			}
		}
	}

	// Deseasonalised values; weekdays with (almost) no traffic are skipped.
	des := func(i int) (float64, bool) {
		s := m.season[weekday(i)]
		if s < minSeasonFactor {
			return 0, false
		}
		return float64(days[i]) / s, true
	}

	// Trend: least-squares slope over the last 28 complete days.
	if nt := min(trendWindow, n); nt >= minTrendDays {
		var xs, ys []float64
		for i := n - nt; i < n; i++ {
			if v, ok := des(i); ok {
				xs = append(xs, float64(i))
				ys = append(ys, v)
			}
		}
		if _, b, ok := leastSquares(xs, ys); ok {
			m.slope = b
		}
	}

	// Level: EWMA of the last 14 deseasonalised days, corrected for its lag.
	var wsum, vsum, agesum float64
	w := levelAlpha
	for age := 0; age < min(levelWindow, n); age++ {
		if v, ok := des(n - 1 - age); ok {
			wsum += w
			vsum += w * v
			agesum += w * float64(age)
		}
		w *= 1 - levelAlpha
	}
	if wsum > 0 {
		m.level = math.Max(0, vsum/wsum+m.slope*agesum/wsum)
	}
	return m
}

// leastSquares fits y = a + b*x; ok is false when the slope is undefined.
func leastSquares(xs, ys []float64) (a, b float64, ok bool) {
	n := float64(len(xs))
	if len(xs) < 2 {
		return 0, 0, false
	}
	var mx, my float64
	for i := range xs {
		mx += xs[i]
		my += ys[i]
	}
	mx /= n
	my /= n
	var sxx, sxy float64
	for i := range xs {
		dx := xs[i] - mx
		sxx += dx * dx
		sxy += dx * (ys[i] - my)
	}
	if sxx == 0 {
		return my, 0, false
	}
	b = sxy / sxx
	return my - b*mx, b, true
}

// midnight returns the UTC midnight starting t's UTC day.
func midnight(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}
