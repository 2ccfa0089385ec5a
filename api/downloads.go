package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/semaphore"

	"github.com/apimeter/apimeter/auth"
	"github.com/apimeter/apimeter/query"
)

// DownloadLimits bound exports: how many run at once, per caller and in
// all, and how their bytes reach clients. Zero fields take the defaults.
type DownloadLimits struct {
	// Max is how many exports may run at once (APIMETER_EXPORTS_MAX).
	// Default 32.
	Max int
	// PerCaller is how many one caller — a tenant's user, whatever key it
	// uses — may run at once (APIMETER_EXPORTS_PER_CALLER). Default 4.
	PerCaller int
	// SpoolDir holds exports on their way to clients: the engine writes
	// there at its own speed and its connection is free again while the
	// client is still reading. Empty streams from the engine straight to
	// the client, so that a slow client holds an engine connection for
	// its whole download.
	SpoolDir string
	// SpoolBytes is the disk the spool may use, every export together
	// (APIMETER_EXPORT_SPOOL_BYTES). When it is full, exports wait for
	// their clients to read. Default 4 GiB.
	SpoolBytes int64
	// RetryAfter is what a refused export is told to wait. Default 30 s.
	RetryAfter time.Duration
}

func (l *DownloadLimits) setDefaults() {
	if l.Max <= 0 {
		l.Max = 32
	}
	if l.PerCaller <= 0 {
		l.PerCaller = 4
	}
	if l.SpoolBytes <= 0 {
		l.SpoolBytes = 4 << 30
	}
	l.SpoolBytes = max(l.SpoolBytes, spoolSegment)
	if l.RetryAfter <= 0 {
		l.RetryAfter = 30 * time.Second
	}
}

// spoolSegment is the size of a spool file: disk comes back to the budget
// a segment at a time, as the client reads.
const spoolSegment = 8 << 20

// Exports keep up to spoolMemory bytes each in memory, from a budget of
// spoolMemoryTotal for all: a client that keeps up never waits for the
// disk; one that falls behind spills to files.
const (
	spoolMemory      = 4 << 20
	spoolMemoryTotal = 64 << 20
)

// downloads admits exports and carries their bytes.
type downloads struct {
	lim  DownloadLimits
	disk *semaphore.Weighted
	mem  *semaphore.Weighted

	mu      sync.Mutex
	running int
	callers map[string]int

	active  prometheus.Gauge
	refused *prometheus.CounterVec
	spooled prometheus.Gauge
}

func newDownloads(lim DownloadLimits, reg prometheus.Registerer, log *slog.Logger) *downloads {
	lim.setDefaults()
	d := &downloads{
		lim: lim, disk: semaphore.NewWeighted(lim.SpoolBytes), mem: semaphore.NewWeighted(spoolMemoryTotal), callers: map[string]int{},
		active: prometheus.NewGauge(prometheus.GaugeOpts{Name: "apimeter_export_downloads", Help: "Exports being written to their clients."}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "apimeter_export_refused_total",
			Help: "Exports refused with a 429 because the caller (reason caller) or everyone (reason overall) had as many running as allowed."}, []string{"reason"}),
		spooled: prometheus.NewGauge(prometheus.GaugeOpts{Name: "apimeter_export_spool_bytes", Help: "Bytes of exports in the spool, written by the engine and not yet read by their clients."}),
	}
	if reg != nil {
		reg.MustRegister(d.active, d.refused, d.spooled)
	}
	if lim.SpoolDir != "" {
		// What a stopped process left behind belongs to no download. (A
		// spool that cannot be made fails each export with the reason.)
		if err := os.RemoveAll(lim.SpoolDir); err != nil {
			log.Error("export spool: clearing what a stopped process left", "dir", lim.SpoolDir, "err", err)
		}
	}
	return d
}

// admit counts an export against its caller's and the overall limit, or
// refuses it with a 429; release ends it.
func (d *downloads) admit(p auth.Principal) (release func(), err error) {
	caller := p.Tenant + "\x00" + p.User
	d.mu.Lock()
	defer d.mu.Unlock()
	refuse := func(reason, msg string) error {
		d.refused.WithLabelValues(reason).Inc()
		e := Errorf(http.StatusTooManyRequests, "rate_limited", "%s; retry in %d seconds", msg, int(d.lim.RetryAfter.Seconds()))
		e.RetryAfter = d.lim.RetryAfter
		return e
	}
	if d.callers[caller] >= d.lim.PerCaller {
		return nil, refuse("caller", fmt.Sprintf("you have %d exports running, the most one caller may", d.lim.PerCaller))
	}
	if d.running >= d.lim.Max {
		return nil, refuse("overall", fmt.Sprintf("%d exports are running, the most this server runs at once", d.lim.Max))
	}
	d.callers[caller]++
	d.running++
	d.active.Inc()
	var once sync.Once
	return func() {
		once.Do(func() {
			d.mu.Lock()
			defer d.mu.Unlock()
			if d.callers[caller]--; d.callers[caller] == 0 {
				delete(d.callers, caller)
			}
			d.running--
			d.active.Dec()
		})
	}, nil
}

// stream writes an export to w: through the spool when there is one, so
// that the engine's part ends at the engine's speed, or straight.
func (d *downloads) stream(ctx context.Context, e *query.Export, w io.Writer) error {
	if d.lim.SpoolDir == "" {
		return e.WriteTo(ctx, w)
	}
	var name [8]byte
	rand.Read(name[:])
	sp := newSpool(filepath.Join(d.lim.SpoolDir, hex.EncodeToString(name[:])), spoolSegment, d.disk, d.mem, spoolMemory,
		func(delta int64) { d.spooled.Add(float64(delta)) })
	ctx, cancel := context.WithCancel(ctx)
	written := make(chan struct{})
	go func() {
		defer close(written)
		sp.finish(e.WriteTo(ctx, sp.writer(ctx)))
	}()
	_, err := io.Copy(w, sp)
	// The client is done (or gone): stop the engine if it still writes,
	// then delete what is left.
	cancel()
	<-written
	sp.close()
	return err
}
