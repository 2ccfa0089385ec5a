package scheduler

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-co-op/gocron/v2"
)

// Schedule says when a job runs. Make one with Every, DailyAt, MonthlyOn
// or Cron; the zero Schedule is not valid. Times are UTC.
type Schedule struct {
	kind   scheduleKind
	every  time.Duration
	day    int
	hour   int
	minute int
	expr   string
}

type scheduleKind int

const (
	kindNone scheduleKind = iota
	kindEvery
	kindDaily
	kindMonthly
	kindCron
)

// Every runs a job every d, on the multiples of d (counted from the zero
// time.Time, so Every(5*time.Minute) runs at :00, :05, :10… UTC), the first
// time at the first multiple after the scheduler starts. Aligned ticks are
// what lets replicas started at different times agree on them. d must be
// at least a second.
func Every(d time.Duration) Schedule { return Schedule{kind: kindEvery, every: d} }

// DailyAt runs a job every day at hour:minute UTC.
func DailyAt(hour, minute int) Schedule {
	return Schedule{kind: kindDaily, hour: hour, minute: minute}
}

// MonthlyOn runs a job every month on day (1 to 31) at hour:minute UTC.
// A month without that day is skipped (MonthlyOn(31, …) does not run in
// April); a negative day counts from the month's end: -1 is its last day.
func MonthlyOn(day, hour, minute int) Schedule {
	return Schedule{kind: kindMonthly, day: day, hour: hour, minute: minute}
}

// Cron runs a job on a standard five-field cron expression ("*/30 * * * *")
// or a descriptor (@hourly, @daily, @monthly…), in UTC. Use Every instead
// of @every.
func Cron(expr string) Schedule { return Schedule{kind: kindCron, expr: strings.TrimSpace(expr)} }

// String describes the schedule for people: "every 5m0s", "daily at 03:00
// UTC", "monthly on day 1 at 00:00 UTC", "cron 0 * * * *".
func (s Schedule) String() string {
	switch s.kind {
	case kindEvery:
		return "every " + s.every.String()
	case kindDaily:
		return fmt.Sprintf("daily at %02d:%02d UTC", s.hour, s.minute)
	case kindMonthly:
		if s.day < 0 {
			return fmt.Sprintf("monthly on day %d from the end at %02d:%02d UTC", -s.day, s.hour, s.minute)
		}
		return fmt.Sprintf("monthly on day %d at %02d:%02d UTC", s.day, s.hour, s.minute)
	case kindCron:
		return "cron " + s.expr
	}
	return "none"
}

func (s Schedule) validate(now time.Time) error {
	clock := func() error {
		if s.hour < 0 || s.hour > 23 || s.minute < 0 || s.minute > 59 {
			return fmt.Errorf("%02d:%02d is not a time of day", s.hour, s.minute)
		}
		return nil
	}
	switch s.kind {
	case kindEvery:
		if s.every < time.Second {
			return fmt.Errorf("every %s: want at least 1s", s.every)
		}
	case kindDaily:
		return clock()
	case kindMonthly:
		if s.day == 0 || s.day > 31 || s.day < -31 {
			return fmt.Errorf("day %d: want 1 to 31, or -1 to -31 from the month's end", s.day)
		}
		return clock()
	case kindCron:
		if strings.HasPrefix(s.expr, "@every") {
			return fmt.Errorf("cron %q: use Every for intervals", s.expr)
		}
		if err := gocron.NewDefaultCron(false).IsValid(s.expr, time.UTC, now); err != nil {
			return fmt.Errorf("cron %q: %w", s.expr, err)
		}
	default:
		return errors.New("no schedule: use Every, DailyAt, MonthlyOn or Cron")
	}
	return nil
}

// definition is the schedule as gocron takes it, with the options it
// needs, for a job added at now.
func (s Schedule) definition(now time.Time) (gocron.JobDefinition, []gocron.JobOption) {
	at := gocron.NewAtTimes(gocron.NewAtTime(uint(s.hour), uint(s.minute), 0))
	switch s.kind {
	case kindEvery:
		// The first multiple of d after now; gocron moves a start that has
		// passed by the time it looks (or by Start) to the next multiple.
		first := now.Truncate(s.every).Add(s.every)
		return gocron.DurationJob(s.every), []gocron.JobOption{gocron.WithStartAt(gocron.WithStartDateTimePast(first))}
	case kindDaily:
		return gocron.DailyJob(1, at), nil
	case kindMonthly:
		return gocron.MonthlyJob(1, gocron.NewDaysOfTheMonth(s.day), at), nil
	default:
		return gocron.CronJob(s.expr, false), nil
	}
}

// tick is the instant a run that fired at t (on this replica's clock) was
// scheduled for. Ticks of calendar and cron schedules fall on whole
// minutes; those of Every(d) on multiples of d. A timer never fires before
// its time, but the wall clock can be stepped a little between arming and
// firing, so t is moved forward by a small tolerance first.
func (s Schedule) tick(t time.Time) time.Time {
	if s.kind == kindEvery {
		tol := min(s.every/10, time.Second)
		return t.Add(tol).Truncate(s.every).UTC()
	}
	return t.Add(time.Second).Truncate(time.Minute).UTC()
}
