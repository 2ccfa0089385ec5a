package store

import (
	"context"
	"fmt"
	"sync"
)

// Class says who waits for a statement, which decides when it gets an
// engine connection. A connection runs one statement at a time and the
// store has a fixed number of them, so whoever holds one long (an export
// streaming to a slow client, a job scanning a month) must not be able to
// take them all: every class but Interactive has a cap, and the caps
// leave connections that only interactive work can use. When a connection
// comes free it goes to a waiting interactive statement first.
type Class uint8

const (
	// Interactive is the default: a person or a probe is waiting (key
	// lookups, readiness, health, statistics, series, limit seeding, the
	// dashboard).
	Interactive Class = iota
	// Ingest is the ingester's loads and the reads it needs to resume.
	Ingest
	// Background is scheduled jobs, rebuilds and maintenance.
	Background
	// Export is downloads: counting and reading an export's rows.
	Export
	numClasses
)

var classNames = [numClasses]string{"interactive", "ingest", "background", "export"}

func (c Class) String() string {
	if c < numClasses {
		return classNames[c]
	}
	return fmt.Sprintf("class(%d)", uint8(c))
}

type classKey struct{}

// WithClass marks the statements run with ctx as c's.
func WithClass(ctx context.Context, c Class) context.Context {
	return context.WithValue(ctx, classKey{}, c)
}

// ClassOf is the class ctx carries: Interactive unless WithClass said
// otherwise.
func ClassOf(ctx context.Context) Class {
	if c, ok := ctx.Value(classKey{}).(Class); ok && c < numClasses {
		return c
	}
	return Interactive
}

// ClassLimits caps how many connections each class may hold at once;
// Interactive may use every connection. Zero fields take the defaults:
// 2 each, or on a store of fewer than DefaultConns connections what
// leaves two to interactive work (at least 1).
type ClassLimits struct {
	// Ingest is the most concurrent ingester statements.
	Ingest int
	// Background is the most concurrent job statements.
	Background int
	// Export is the engine's share for downloads.
	Export int
	// Unlimited turns the caps off: every class may take every connection
	// (benchmarks compare against it).
	Unlimited bool
}

// DefaultConns is the connection count that keeps two connections for
// interactive work with every other class at its default cap.
const DefaultConns = 8

// wanted is how many connections the caps want: every class at its cap,
// and two for interactive work.
func (l ClassLimits) wanted() int {
	c := l.caps(1 << 20)
	return c[Ingest] + c[Background] + c[Export] + 2
}

func (l ClassLimits) caps(total int) [numClasses]int {
	share := min(2, max(1, (total-2)/3))
	def := func(v int) int {
		if v <= 0 {
			v = share
		}
		return min(v, total)
	}
	c := [numClasses]int{Interactive: total, Ingest: def(l.Ingest), Background: def(l.Background), Export: def(l.Export)}
	if l.Unlimited {
		c = [numClasses]int{total, total, total, total}
	}
	return c
}

// gate hands out a store's connection slots by class. Waiters of a
// class are served in arrival order; a freed slot goes to the first
// class, in declaration order, that has a waiter and room under its cap.
type gate struct {
	mu      sync.Mutex
	free    int
	caps    [numClasses]int
	inUse   [numClasses]int
	waiters [numClasses][]chan struct{}
	waits   [numClasses]uint64 // acquisitions that had to wait
}

func newGate(total int, l ClassLimits) *gate {
	return &gate{free: total, caps: l.caps(total)}
}

func (g *gate) room(c Class) bool { return g.free > 0 && g.inUse[c] < g.caps[c] }

// acquire takes a slot for ctx's class, waiting for one until ctx ends.
func (g *gate) acquire(ctx context.Context) (Class, error) {
	c := ClassOf(ctx)
	g.mu.Lock()
	if len(g.waiters[c]) == 0 && g.room(c) {
		g.free--
		g.inUse[c]++
		g.mu.Unlock()
		return c, nil
	}
	ch := make(chan struct{})
	g.waiters[c] = append(g.waiters[c], ch)
	g.waits[c]++
	g.mu.Unlock()
	select {
	case <-ch:
		return c, nil
	case <-ctx.Done():
		g.mu.Lock()
		defer g.mu.Unlock()
		select {
		case <-ch: // granted meanwhile: give it back
			g.inUse[c]--
			g.free++
			g.grant()
		default:
			for i, w := range g.waiters[c] {
				if w == ch {
					g.waiters[c] = append(g.waiters[c][:i], g.waiters[c][i+1:]...)
					break
				}
			}
		}
		return c, ctx.Err()
	}
}

// release gives back a slot of class c.
func (g *gate) release(c Class) {
	g.mu.Lock()
	g.inUse[c]--
	g.free++
	g.grant()
	g.mu.Unlock()
}

// grant hands free slots to waiters, interactive first. Called with mu.
func (g *gate) grant() {
	for c := range numClasses {
		for len(g.waiters[c]) > 0 && g.room(c) {
			ch := g.waiters[c][0]
			g.waiters[c] = g.waiters[c][1:]
			g.free--
			g.inUse[c]++
			close(ch)
		}
	}
}

// ClassStats is a snapshot of one class's use of the connections.
type ClassStats struct {
	Class   string `json:"class"`
	Cap     int    `json:"cap"`
	InUse   int    `json:"inUse"`
	Waiting int    `json:"waiting"`
	// Waited counts acquisitions that had to wait, since start.
	Waited uint64 `json:"waited"`
}

func (g *gate) stats() []ClassStats {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]ClassStats, numClasses)
	for c := range numClasses {
		out[c] = ClassStats{Class: c.String(), Cap: g.caps[c], InUse: g.inUse[c], Waiting: len(g.waiters[c]), Waited: g.waits[c]}
	}
	return out
}
