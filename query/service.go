package query

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/apimeter/apimeter/dims"
)

// Error is a request the service refuses; its message says why.
type Error struct{ Msg string }

func (e *Error) Error() string { return e.Msg }

func invalid(format string, args ...any) error { return &Error{Msg: fmt.Sprintf(format, args...)} }

// IsInvalid reports whether err is a refused request (a 400).
func IsInvalid(err error) bool {
	var e *Error
	return errors.As(err, &e)
}

// Limits cap what one request may ask for. Zero fields take the defaults
// in their comments.
type Limits struct {
	MaxRange       time.Duration // default 400 days
	MaxMinuteRange time.Duration // default 7 days
	MaxPoints      int           // per series, default 5,000
	MaxSeries      int           // default 100
}

func (l *Limits) setDefaults() {
	if l.MaxRange <= 0 {
		l.MaxRange = 400 * 24 * time.Hour
	}
	if l.MaxMinuteRange <= 0 {
		l.MaxMinuteRange = 7 * 24 * time.Hour
	}
	if l.MaxPoints <= 0 {
		l.MaxPoints = 5000
	}
	if l.MaxSeries <= 0 {
		l.MaxSeries = 100
	}
}

// Service answers analytics queries.
type Service struct {
	db     DB
	limits Limits
	now    func() time.Time
	// exportBlockRows, when set, makes the engine cut exports into
	// blocks of this many rows (tests use it to see many chunks).
	exportBlockRows int
	// dims are the declared custom dimensions.
	dims []dims.Spec
}

// SetDimensions declares the custom dimensions requests may group and
// filter by (APIMETER_DIMENSIONS).
func (s *Service) SetDimensions(specs []dims.Spec) { s.dims = specs }

// checkCustom refuses custom dimensions that are not declared, and writes
// filter values as the dimension stores them (ints without leading zeros,
// bools as true or false).
func (s *Service) checkCustom(groupBy []Dimension, f *Filters) error {
	declared := func(name string) (dims.Spec, error) {
		sp, ok := dims.Find(s.dims, name)
		if !ok {
			if len(s.dims) == 0 {
				return sp, invalid("custom dimension %q: none is declared (APIMETER_DIMENSIONS)", name)
			}
			return sp, invalid("custom dimension %q: declared are %s", name, strings.Join(dims.Names(s.dims), ", "))
		}
		return sp, nil
	}
	for _, d := range groupBy {
		if name, ok := d.Custom(); ok {
			if _, err := declared(name); err != nil {
				return err
			}
		}
	}
	for name, vs := range f.Custom {
		sp, err := declared(name)
		if err != nil {
			return err
		}
		norm := make([]string, len(vs))
		for i, v := range vs {
			norm[i] = v
			if v != dims.Other && v != dims.Invalid {
				if norm[i] = sp.Normalize(v); norm[i] == dims.Invalid {
					return invalid("filters.dimensions.%s: %q is not a %s value", name, v, sp.Type)
				}
			}
		}
		f.Custom[name] = norm
	}
	return nil
}

// New builds a Service.
func New(db DB, limits Limits) *Service {
	limits.setDefaults()
	return &Service{db: db, limits: limits, now: time.Now}
}

// SetClock replaces the clock (tests).
func (s *Service) SetClock(now func() time.Time) { s.now = now }

// SeriesRequest asks for a time series.
type SeriesRequest struct {
	Scope       Scope
	Range       Range
	Granularity Granularity
	Metrics     []Metric
	GroupBy     []Dimension
	Filters     Filters
}

// Point is one bucket of a series.
type Point struct {
	Time   time.Time
	Values map[Metric]float64
}

// Series is one group's points.
type Series struct {
	Group  map[Dimension]string
	Points []Point
}

// SeriesResult is a time series answer.
type SeriesResult struct {
	Source string // the table that answered
	Series []Series
}

func (s *Service) checkRange(r Range, g Granularity) error {
	if r.Loc == nil {
		return invalid("no time zone")
	}
	if !r.End.After(r.Start) {
		return invalid("endDate must be after startDate")
	}
	// End.Sub(Start) stops at 292 years (the longest time.Duration): it
	// still compares right, but the span is said from the instants.
	if span := r.End.Sub(r.Start); span > s.limits.MaxRange {
		return invalid("the range spans %s days: at most %s days", days(r), days(Range{Start: r.Start, End: r.Start.Add(s.limits.MaxRange)}))
	} else if g == GrainMinute && span > s.limits.MaxMinuteRange {
		return invalid("the range spans %s days: minute buckets cover at most %s days; use hour or a shorter range",
			days(r), days(Range{Start: r.Start, End: r.Start.Add(s.limits.MaxMinuteRange)}))
	}
	return nil
}

// days is the length of a range in days, rounded up to hundredths.
func days(r Range) string {
	secs := float64(r.End.Unix()-r.Start.Unix()) + float64(r.End.Nanosecond()-r.Start.Nanosecond())/1e9
	return strconv.FormatFloat(math.Ceil(secs/864)/100, 'f', -1, 64)
}

// Series computes a time series: one series per group of the GroupBy
// dimensions, every bucket of the range present (zeros where there was no
// traffic).
func (s *Service) Series(ctx context.Context, req SeriesRequest) (*SeriesResult, error) {
	if err := s.checkRange(req.Range, req.Granularity); err != nil {
		return nil, err
	}
	if !slices.Contains(Granularities, req.Granularity) {
		return nil, invalid("granularity %q: want one of minute, hour, day, week, month", req.Granularity)
	}
	if len(req.Metrics) == 0 {
		req.Metrics = []Metric{Requests}
	}
	for _, m := range req.Metrics {
		if !slices.Contains(Metrics, m) {
			return nil, invalid("metric %q: want one of %s", m, joinMetrics(Metrics))
		}
	}
	if err := s.checkCustom(req.GroupBy, &req.Filters); err != nil {
		return nil, err
	}
	seen := map[Dimension]bool{}
	for _, d := range req.GroupBy {
		if _, custom := d.Custom(); !custom && !slices.Contains(Dimensions, d) {
			return nil, invalid("groupBy %q: want one of endpoint, method, statusCode, statusClass, userId or dimensions.<name>", d)
		}
		if seen[d] {
			return nil, invalid("groupBy %q given twice", d)
		}
		seen[d] = true
	}
	groupBy := withTenant(req.Scope, req.GroupBy)
	bks := buckets(req.Range, req.Granularity)
	if len(bks) > s.limits.MaxPoints {
		return nil, invalid("%d points per series: at most %d; use a coarser granularity or a shorter range", len(bks), s.limits.MaxPoints)
	}
	p, err := newPlan(need{scope: req.Scope, rng: req.Range, grain: req.Granularity, metrics: req.Metrics, dims: groupBy, filters: req.Filters, now: s.now(), only: true})
	if err != nil {
		return nil, err
	}
	rows, err := p.run(ctx, s.db)
	if err != nil {
		return nil, err
	}
	type group struct {
		dims []string
		at   map[int64]Aggregate
	}
	groups := map[string]*group{}
	var order []string
	for _, r := range rows {
		key := strings.Join(r.dims, "\x00")
		g := groups[key]
		if g == nil {
			g = &group{dims: r.dims, at: map[int64]Aggregate{}}
			groups[key] = g
			order = append(order, key)
		}
		g.at[r.bucket] = r.agg
	}
	if len(groups) > s.limits.MaxSeries {
		return nil, invalid("%d series: at most %d; add a filter or group by less", len(groups), s.limits.MaxSeries)
	}
	if len(groups) == 0 && len(groupBy) == 0 {
		groups[""] = &group{at: map[int64]Aggregate{}}
		order = append(order, "")
	}
	sort.Strings(order)
	res := &SeriesResult{Source: p.src.name}
	for _, key := range order {
		g := groups[key]
		ser := Series{Group: map[Dimension]string{}}
		for i, d := range groupBy {
			ser.Group[d] = g.dims[i]
		}
		for _, b := range bks {
			a := g.at[b.Unix()]
			pt := Point{Time: b, Values: make(map[Metric]float64, len(req.Metrics))}
			for _, m := range req.Metrics {
				pt.Values[m] = a.Value(m)
				if a.Requests == 0 && m.PerRequest() {
					pt.Values[m] = math.NaN() // nothing measured: a gap, not a zero
				}
			}
			ser.Points = append(ser.Points, pt)
		}
		res.Series = append(res.Series, ser)
	}
	return res, nil
}

func joinMetrics(ms []Metric) string {
	parts := make([]string, len(ms))
	for i, m := range ms {
		parts[i] = string(m)
	}
	return strings.Join(parts, ", ")
}
