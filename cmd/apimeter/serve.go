package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"
	"github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/apimeter/apimeter/accounts"
	"github.com/apimeter/apimeter/api"
	"github.com/apimeter/apimeter/auth"
	"github.com/apimeter/apimeter/config"
	"github.com/apimeter/apimeter/dims"
	"github.com/apimeter/apimeter/events"
	"github.com/apimeter/apimeter/forecast"
	"github.com/apimeter/apimeter/ingest"
	"github.com/apimeter/apimeter/ingest/producer"
	"github.com/apimeter/apimeter/limits"
	"github.com/apimeter/apimeter/query"
	"github.com/apimeter/apimeter/scheduler"
	"github.com/apimeter/apimeter/schema"
	"github.com/apimeter/apimeter/store"
	"github.com/apimeter/apimeter/web"
)

func serve(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	noMigrate := fs.Bool("no-migrate", false, "do not apply migrations at start (readiness waits for them)")
	rolesFlag := fs.String("roles", "api,ingest,scheduler", "comma-separated roles this process runs: api, ingest, scheduler")
	if err := fs.Parse(args); err != nil {
		return exitCode(2)
	}
	roles, err := parseRoles(*rolesFlag)
	if err != nil {
		fmt.Fprintln(stderr, "serve:", err)
		return exitCode(2)
	}
	cfg, err := config.FromEnv()
	if err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	level := cfg.LogLevel
	if cfg.UsageDebug { // API_USAGE_DEBUG: every tracked record, at debug level
		level = slog.LevelDebug
	}
	log := newLogger(level, cfg.LogFormat, stderr)

	// The ingester's loads have a share of the connections of their own;
	// two more each for jobs and exports, and at least two are left for
	// interactive reads.
	scfg := cfg.Store()
	scfg.Limits.Ingest = ingest.DefaultLoads()
	scfg.Conns = max(scfg.Conns, scfg.Limits.Ingest+6)
	db, err := store.Open(ctx, scfg)
	if err != nil {
		return err
	}
	defer db.Close()
	log.Info("store open", "driver", db.Kind(), "url", store.RedactURL(cfg.ClickHouseURL), "data_dir", cfg.DataDir)

	layout := schema.Layout{Cluster: cfg.ClickHouseCluster}
	mig, err := schema.NewMigrator(db, layout, log)
	if err != nil {
		return err
	}
	if !*noMigrate {
		if _, err := mig.Apply(ctx); err != nil {
			return err
		}
		changed, err := schema.EnsureRetention(ctx, db, layout, cfg.RetentionDays)
		if err != nil {
			return err
		}
		if len(changed) > 0 {
			log.Info("retention changed", "days", cfg.RetentionDays, "tables", changed)
		}
	}

	reg := prometheus.NewRegistry()
	var g run.Group
	checks := map[string]api.Check{
		"store": db.Ping,
		"schema": func(ctx context.Context) error {
			st, err := mig.Status(ctx)
			if err != nil {
				return err
			}
			if st.Problems != nil {
				return st.Problems
			}
			if n := len(st.Pending); n > 0 {
				return fmt.Errorf("%d migrations pending", n)
			}
			return nil
		},
	}

	brokers := cfg.KafkaBrokers
	// The embedded broker admits to the ingesters' group only members
	// presenting this secret: the ingester of this process.
	var groupSecret string
	if len(brokers) == 0 {
		kafkaDir := filepath.Join(cfg.DataDir, "kafka")
		if groupSecret, err = ingest.LoadGroupSecret(kafkaDir); err != nil {
			return err
		}
		br, err := ingest.StartBroker(ingest.BrokerConfig{
			Addr: cfg.EmbeddedKafkaAddr, DataDir: kafkaDir,
			Topics: []string{cfg.KafkaTopic, cfg.KafkaTopic + "-dlq", events.Topic}, Partitions: cfg.KafkaPartitions,
			Group: cfg.KafkaGroup, GroupSecret: groupSecret, Log: log, Registerer: reg,
		})
		if err != nil {
			return err
		}
		defer br.Close()
		brokers = []string{br.Addr()}
		log.Info("embedded kafka broker listening", "addr", br.Addr())
	}
	// Events go to in-process subscribers and to api-usage-events.
	sink := events.NewKafkaSink(brokers, events.Topic, log)
	defer sink.Close()
	bus := events.NewBus("apimeter", sink)
	bus.Subscribe(func(e events.CloudEvent) {
		log.Debug("event", "type", e.Type, "id", e.ID, "tenantId", e.TenantID, "userId", e.UserID)
	})
	var rc *redis.Client
	if cfg.RedisURL != "" {
		if rc, err = limits.RedisClient(cfg.RedisURL); err != nil {
			return err
		}
		defer rc.Close()
	}

	lim, resolver, err := newLimiter(ctx, cfg, db, rc, reg, log, bus)
	if err != nil {
		return err
	}
	// Stored records no decision counted reach the limits through the
	// feed, off the ingester's path.
	feed := limits.NewFeed(lim, limits.FeedConfig{Registerer: reg})

	var ingestStats api.IngestStats
	if roles["ingest"] {
		if rc == nil && !roles["api"] {
			log.Warn("limits are in this process's memory and no API runs here: the stored calls it counts reach no decision; set REDIS_URL so every replica shares them")
		}
		icfg := ingestConfig(cfg, brokers)
		icfg.GroupSecret = groupSecret
		icfg.InsertSettings = layout.InsertSettings()
		if len(cfg.Dimensions) > 0 {
			icfg.Dimensions = dims.NewFolder(cfg.Dimensions, reg)
		}
		// api.usage.tracked is one event per stored batch, with its
		// counts: an event per record would double the Kafka traffic.
		icfg.OnLoaded = func(b ingest.LoadedBatch) {
			if cfg.UsageDebug {
				log.Debug("usage batch stored", "topic", b.Topic, "partition", b.Partition, "first_offset", b.FirstOffset,
					"last_offset", b.LastOffset, "records", b.Records, "features", b.Features, "rejected", b.Rejected, "by_tenant", b.ByTenant)
			}
			bus.Publish(fmt.Sprintf("usage:%s:%d:%d", b.Topic, b.Partition, b.FirstOffset), "api.usage.tracked", time.Now(), "", "",
				fmt.Sprintf("%s/%d", b.Topic, b.Partition), b)
			feed.Add(reportedCalls(b.Calls))
		}
		icfg.Decided = lim.Decided
		icfg.Route = cfg.Plans.Route
		in, err := ingest.New(icfg, db, log, reg)
		if err != nil {
			return err
		}
		defer in.Close()
		ingestStats = in
		checks["kafka"] = in.Ready
		ictx, stop := context.WithCancel(store.WithClass(context.Background(), store.Ingest))
		g.Add(func() error { return in.Run(ictx) }, func(error) { stop() })
	}

	// The producer sends records accepted by POST /events and those of
	// apimeter's own API; while Kafka is away they wait in a spool.
	prod, err := producer.New(producer.Config{Brokers: brokers, Topic: cfg.KafkaTopic, SpoolDir: filepath.Join(cfg.DataDir, "spool"), Log: log})
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := prod.Close(cctx); err != nil {
			log.Error("close producer", "err", err)
		}
	}()

	srv := api.New(api.Config{Addr: cfg.HTTPAddr, MetricsAddr: cfg.MetricsAddr, TrustedProxies: cfg.TrustedProxies,
		AuthGuard: lim.Strikes("auth", cfg.AuthFailuresMax, cfg.AuthFailuresWindow)}, log, reg, checks)
	var tracker producer.Tracker = prod
	if cfg.UsageDebug {
		tracker = debugTracker{next: prod, log: log}
	}
	// Only calls with a valid key are usage: failed keys, probes and the
	// dashboard's files would otherwise fill the store with "anonymous".
	srv.Echo().Use(producer.TrackUsage(tracker, producer.MiddlewareConfig{
		// Decisions are not apimeter's own usage: a gateway asks once per
		// call of the API it guards, and that API reports the call.
		Skipper: func(c echo.Context) bool {
			return c.Path() == "" || strings.HasPrefix(c.Path(), api.BasePath+"/limits/") || !api.Authenticated(c)
		},
		Identity: ownIdentity,
		Metadata: func(echo.Context) map[string]string { return map[string]string{"service": "apimeter"} },
	}))
	keys := auth.NewStore(db, cfg.AdminKey)
	lctx, stopLimiter := context.WithCancel(store.WithClass(context.Background(), store.Background))
	g.Add(func() error { return lim.Run(lctx) }, func(error) { stopLimiter() })
	fctx, stopFeed := context.WithCancel(store.WithClass(context.Background(), store.Background))
	g.Add(func() error { return feed.Run(fctx) }, func(error) { stopFeed() })
	// apimeter's own API is not the metered API: its calls neither count
	// against a caller's plan nor are refused by it (reading one's usage
	// must work when the quota is spent). Each response shows the plan's
	// numbers as they stand; the API protects itself with its own limit
	// per caller (API_RATE_LIMIT_MAX_REQUESTS per API_RATE_LIMIT_WINDOW_MS,
	// per address without a key). Admins are exempt.
	limitMW := lim.Middleware(limits.MiddlewareConfig{Skip: api.IsAdmin})
	ownLimits := api.OwnLimits(limitMW, cfg.RateLimitMaxRequests, cfg.RateLimitWindow)
	srv.MountEvents(prod, ingest.Policy{Retention: time.Duration(cfg.RetentionDays) * 24 * time.Hour}, api.ServiceAuth(keys))
	srv.MountDecisions(&api.DecisionsAPI{Limits: lim, Keys: keys, Route: cfg.Plans.Route})
	qs := query.New(db, query.Limits{})
	qs.SetDimensions(cfg.Dimensions)
	srv.MountAnalytics(&api.Analytics{
		Query: qs, Keys: keys, Ingest: ingestStats, ExportMaxRows: uint64(cfg.ExportMaxRows),
		Thresholds:         query.Thresholds{Degraded: cfg.HealthDegradedThreshold, Unhealthy: cfg.HealthUnhealthyThreshold, Slow: cfg.SlowResponseThreshold},
		HealthIncludesSelf: cfg.HealthIncludesSelf,
		Limits:             lim, Enforce: ownLimits, Records: db,
		Downloads: api.DownloadLimits{Max: cfg.ExportsMax, PerCaller: cfg.ExportsPerCaller,
			SpoolDir: filepath.Join(cfg.DataDir, "export-spool"), SpoolBytes: cfg.ExportSpoolBytes},
	})
	srv.MountAccounts(&api.AccountsAPI{
		Store: accounts.New(db), ValidPlan: cfg.Plans.Valid, Plans: cfg.Plans.Names,
		OnChange: resolver.Invalidate,
	}, api.KeyAuth(keys, true))

	// Operations: notifications, the health monitor and its incidents,
	// and (role scheduler) the background jobs.
	disp, err := newDispatcher(cfg, db, reg, log)
	if err != nil {
		return err
	}
	if disp != nil {
		dctx, stopDispatch := context.WithCancel(store.WithClass(context.Background(), store.Background))
		g.Add(func() error {
			// What a stopped process left undelivered goes out now.
			if n, err := disp.Resume(dctx, time.Now().Add(-24*time.Hour)); err != nil {
				log.Warn("resume notifications", "err", err)
			} else if n > 0 {
				log.Info("notifications resumed", "count", n)
			}
			return disp.Run(dctx)
		}, func(error) {
			fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = disp.Flush(fctx)
			stopDispatch()
		})
	}
	mon := newMonitor(cfg, db, qs, disp, bus, reg, log)
	srv.MountIncidents(&api.IncidentsAPI{Monitor: mon}, api.KeyAuth(keys, true))
	runs := scheduler.ClickHouseRunLog{DB: db}
	var sched *scheduler.Scheduler
	if roles["scheduler"] {
		sc := scheduler.Config{Runs: runs, Registerer: reg, Log: log}
		if rc != nil {
			sc.Locker = scheduler.NewRedisLocker(rc, "apimeter:", 0)
		}
		if sched, err = scheduler.New(sc); err != nil {
			return err
		}
		if err := sched.Add(background(jobs(cfg, db, layout, mon, lim, reg, log))...); err != nil {
			return err
		}
		sched.Start()
		sctx, stopSched := context.WithCancel(context.Background())
		g.Add(func() error { <-sctx.Done(); return nil }, func(error) {
			if err := sched.Shutdown(); err != nil {
				log.Error("scheduler shutdown", "err", err)
			}
			stopSched()
		})
	}
	srv.MountJobs(&api.JobsAPI{Scheduler: sched, Runs: runs}, api.KeyAuth(keys, true))
	srv.MountWeb(web.Handler())
	if err := srv.Listen(); err != nil {
		return err
	}
	g.Add(srv.Serve, func(error) {
		if err := srv.Shutdown(); err != nil {
			log.Error("http shutdown", "err", err)
		}
	})
	g.Add(run.ContextHandler(ctx))
	err = g.Run()
	log.Info("stopped")
	if ctx.Err() != nil { // a signal: a clean stop
		return nil
	}
	return err
}

// reportedCalls are a stored batch's calls as the limiter counts them;
// apimeter's own API (tenant api.OwnTenant) is no one's plan usage.
func reportedCalls(calls []ingest.Call) []limits.Reported {
	out := make([]limits.Reported, 0, len(calls))
	for _, c := range calls {
		if c.Tenant == api.OwnTenant {
			continue
		}
		out = append(out, limits.Reported{Tenant: strings.Clone(c.Tenant), User: strings.Clone(c.User), Method: strings.Clone(c.Method),
			Route: strings.Clone(c.Endpoint), At: time.Unix(c.Second, 0), Cost: c.Cost})
	}
	return out
}

// parseRoles reads --roles.
func parseRoles(s string) (map[string]bool, error) {
	roles := map[string]bool{}
	for _, r := range strings.Split(s, ",") {
		switch r = strings.TrimSpace(r); r {
		case "api", "ingest", "scheduler":
			roles[r] = true
		case "":
		default:
			return nil, fmt.Errorf("unknown role %q (want api, ingest or scheduler)", r)
		}
	}
	if len(roles) == 0 {
		return nil, fmt.Errorf("no role given")
	}
	return roles, nil
}

func ingestConfig(cfg config.Config, brokers []string) ingest.Config {
	window := cfg.DedupWindow
	if window == 0 {
		window = -1 // off
	}
	return ingest.Config{
		Brokers: brokers, Topic: cfg.KafkaTopic, Group: cfg.KafkaGroup, Partitions: cfg.KafkaPartitions,
		MaxBatchRecords: cfg.IngestBatchRecords, MaxBatchBytes: cfg.IngestBatchBytes, MaxBatchWait: cfg.IngestBatchWait,
		DedupWindow: window, DedupMaxIDs: cfg.DedupMaxIDs,
		Retention: time.Duration(cfg.RetentionDays) * 24 * time.Hour,
	}
}

// newLimiter builds the limits of the API: the configuration's plans,
// accounts and recorded usage from ClickHouse, counters in Redis when
// REDIS_URL is set (shared by replicas) and in memory otherwise.
func newLimiter(ctx context.Context, cfg config.Config, db store.Driver, rc *redis.Client, reg prometheus.Registerer, log *slog.Logger, bus *events.Bus) (*limits.Limiter, *limits.CachedResolver, error) {
	ch := limits.ClickHouse{DB: db}
	resolver := limits.NewCachedResolver(accounts.New(db), 30*time.Second)
	forecasts := query.New(db, query.Limits{})
	lc := limits.Config{
		Plans: cfg.Plans, Resolver: resolver, Usage: ch, Notices: limits.NewStoreNotices(ch),
		IPLimit: uint64(cfg.RateLimitMaxRequests), IPWindow: cfg.RateLimitWindow, FailClosed: cfg.LimitsFail == "closed",
		Registerer: reg, Log: log,
		OnEvent: func(e limits.Event) { bus.Publish(e.ID, e.Type, e.Time, e.Tenant, e.User, e.User, e.Data) },
		Forecast: func(ctx context.Context, tenant, user string, now, start, end time.Time, limit, used uint64) (forecast.Result, error) {
			return forecasts.QuotaForecast(ctx, query.Scope{Tenant: tenant, User: user}, now, start, end, limit, used)
		},
	}
	if rc != nil {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		if err := rc.Ping(pctx).Err(); err != nil {
			log.Warn("redis does not answer yet; limit decisions follow APIMETER_LIMITS_FAIL until it does", "addr", rc.Options().Addr, "err", err)
		}
		lc.Backend = limits.NewRedis(rc, "apimeter:")
		lc.Notices = limits.NewRedisNotices(rc, "apimeter:", ch)
		log.Info("limits in redis", "addr", rc.Options().Addr)
	}
	secret := []byte(cfg.DecisionSecret)
	if len(secret) == 0 && rc != nil {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		var err error
		secret, err = limits.RedisDecisionSecret(sctx, rc, "apimeter:")
		cancel()
		if err != nil {
			log.Warn("no shared decision secret: this replica signs decisions with its own, so other replicas count its decided calls again when they are reported", "err", err)
		}
	}
	if len(secret) == 0 {
		secret = limits.NewSecret()
	}
	var err error
	if lc.Decisions, err = limits.NewDecisions(secret); err != nil {
		return nil, nil, err
	}
	return limits.New(lc), resolver, nil
}

// debugTracker logs every record apimeter's own API tracks
// (API_USAGE_DEBUG); records carry a key's id, never the key.
type debugTracker struct {
	next producer.Tracker
	log  *slog.Logger
}

func (d debugTracker) Track(r producer.Record) {
	d.log.Debug("usage tracked", "tenantId", r.TenantID, "userId", r.UserID, "apiKeyId", r.APIKeyID, "endpoint", r.Endpoint,
		"method", r.Method, "status", r.StatusCode, "response_ms", r.ResponseTimeMs)
	d.next.Track(r)
}

// ownIdentity is who apimeter's own API calls are recorded for: the
// tenant "apimeter", with the caller's tenant and user as the user
// ("tenant-1:user-42"), so reading one's usage never adds to it.
func ownIdentity(c echo.Context) (string, string, string) {
	tenant, _ := c.Get("tenantId").(string)
	user, _ := c.Get("userId").(string)
	key, _ := c.Get("apiKeyId").(string)
	who := "anonymous"
	if user != "" {
		who = shortName(strings.ReplaceAll(tenant, "*", "all") + ":" + user)
	}
	return api.OwnTenant, who, key
}

// shortName keeps a user id within auth.MaxNameBytes: a long one is cut
// (at a character boundary) and ends with a hash of the whole, so that
// two long ids stay apart.
func shortName(s string) string {
	if len(s) <= auth.MaxNameBytes {
		return s
	}
	sum := sha256.Sum256([]byte(s))
	tail := "~" + hex.EncodeToString(sum[:6])
	cut := auth.MaxNameBytes - len(tail)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + tail
}

// background runs jobs in the store's background class: a month-long
// rollup check never holds the connections interactive reads need.
func background(js []scheduler.Job) []scheduler.Job {
	for i := range js {
		run := js[i].Run
		js[i].Run = func(ctx context.Context) error { return run(store.WithClass(ctx, store.Background)) }
	}
	return js
}
