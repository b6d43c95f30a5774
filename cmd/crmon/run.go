// SPDX-License-Identifier: Apache-2.0
// Copyright The crmon Authors.

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/urfave/cli/v2"

	"github.com/crmon-dev/crmon/internal/agent"
	"github.com/crmon-dev/crmon/internal/alert"
	"github.com/crmon-dev/crmon/internal/config"
	"github.com/crmon-dev/crmon/internal/control"
	"github.com/crmon-dev/crmon/internal/export"
	"github.com/crmon-dev/crmon/internal/host"
	"github.com/crmon-dev/crmon/internal/live"
	"github.com/crmon-dev/crmon/internal/textpages"
	"github.com/crmon-dev/crmon/internal/timerslack"
	"github.com/crmon-dev/crmon/internal/version"
	"github.com/crmon-dev/crmon/internal/web"
	"github.com/crmon-dev/crmon/pkg/metrics"
)

func configFlag() cli.Flag {
	return &cli.StringFlag{Name: "config", Aliases: []string{"c"}, Usage: "TOML config file (every key has a default; none needed)", EnvVars: []string{"CRMON_CONFIG"}}
}

func runCommand() *cli.Command {
	flags := []cli.Flag{
		configFlag(),
		&cli.StringFlag{Name: "web.listen-address", Value: web.DefaultListenAddress, Usage: "address for /metrics, /api/v1/… and /healthz", EnvVars: []string{"CRMON_WEB_LISTEN_ADDRESS"}},
		&cli.StringFlag{Name: "web.config.file", Usage: "exporter-toolkit web config for TLS and basic auth", EnvVars: []string{"CRMON_WEB_CONFIG_FILE"}},
		&cli.StringSliceFlag{Name: "web.allowed-hosts", Usage: "names besides localhost, the hostname and IP addresses that requests may carry as their Host (repeatable)", EnvVars: []string{"CRMON_WEB_ALLOWED_HOSTS"}},
		&cli.StringFlag{Name: "control.socket", Usage: "unix socket of the session API (overrides [cleanroom.monitoring.sessions] socket; \"\" for none)", EnvVars: []string{"CRMON_CONTROL_SOCKET"}},
		&cli.StringFlag{Name: "control.socket-group", Usage: "group whose members may use the control socket (overrides socket_group)", EnvVars: []string{"CRMON_CONTROL_SOCKET_GROUP"}},
		&cli.StringFlag{Name: "store.path", Usage: "directory of the local store (overrides [cleanroom.monitoring.store] path)", EnvVars: []string{"CRMON_STORE_PATH"}},
		&cli.DurationFlag{Name: "timer-slack", Value: timerSlack, Usage: "how late the kernel may fire the agent's timers, so that its threads wake less often (0: the kernel's default, 50µs)", EnvVars: []string{"CRMON_TIMER_SLACK"}},
		&cli.IntFlag{Name: "max-procs", Value: maxProcs, Usage: "how many threads run the agent's Go code at once (GOMAXPROCS; 0: the Go runtime's default, one per CPU; the GOMAXPROCS variable, when set, wins)", EnvVars: []string{"CRMON_MAX_PROCS"}, Action: intIn(0, 1024)},
		&cli.StringFlag{Name: "collection-interval", Usage: "override collection_interval from the config (e.g. 1s)", EnvVars: []string{"CRMON_COLLECTION_INTERVAL"}},
	}
	flags = append(flags, sourceFlags()...)
	return &cli.Command{
		Name:  "run",
		Usage: "run the agent: collect every interval, serve /metrics and the JSON snapshot",
		Description: `The agent collects host, container and eBPF metrics once per collection_interval
and serves them on --web.listen-address: a live page at /, /metrics (Prometheus), /api/v1/snapshot (the
latest sample as JSON), /api/v1/alerts (active alerts, Prometheus' shape) and /healthz.
With enable_alerting, thresholds and alert rules are evaluated on every sample and
notified to the alert channels. The session API (/api/v1/sessions) is served on
the control socket only (--control.socket, default /run/crmon/crmon.sock).
SIGHUP reloads the config file (a bad file keeps the running config and logs why);
SIGTERM or SIGINT stops the agent within a second, or, while alert
notifications or exporters' samples are still queued, within their
delivery_grace_period more.`,
		Flags:  flags,
		Action: runAgent,
	}
}

func runAgent(c *cli.Context) error {
	logger, err := newLogger(c)
	if err != nil {
		return err
	}
	setTimerSlack(c.Duration("timer-slack"), logger)
	setMaxProcs(c.Int("max-procs"))
	setGCPercent()
	cfg, err := loadConfig(c)
	if err != nil {
		return err
	}
	if w := inlineSecretsWarning(c.String("config"), cfg); w != "" {
		logger.Warn("the config file holds secrets: " + w)
	}
	if err := web.CheckConfigFile(c.String("web.config.file")); err != nil {
		return err
	}
	scheme := web.Scheme(c.String("web.config.file"))
	if !cfg.Monitoring.EnableMonitoring {
		logger.Warn("enable_monitoring = false in the config: collecting nothing, serving health only")
	}

	src, err := newSources(c, cfg, logger)
	if err != nil {
		return err
	}
	// A stop by signal closes src itself, within the shutdown's budget.
	stopping := false
	defer func() {
		if !stopping {
			src.Close()
		}
	}()

	interval := cfg.Monitoring.CollectionInterval.Std()
	a := agent.New(src.Collectors(), interval, logger)

	hist, err := startStore(cfg, logger)
	if err != nil {
		return err
	}
	al, err := startAlerting(cfg, a, hist.exprQuery(), logger)
	if err != nil {
		return err
	}
	defer al.close()
	// Exporters subscribe now and read their first sample at the first
	// tick; they are stopped before the agent's subscriptions close.
	exp, err := export.Start(a, cfg.Monitoring.Exporters, export.Options{Logger: logger, QueueDir: exportQueueDir(cfg)})
	if err != nil {
		return err
	}
	defer exp.Close()
	extra := append([]prometheus.Collector{
		collectors.NewGoCollector(),
		host.NewSelfCollector("crmon"),
		buildInfoCollector(),
		al.svc.Engine,
		al.metrics,
		exp,
	}, hist.collectors()...)
	readOnly := map[string]http.Handler{"/api/v1/alerts": alert.APIHandler(al.svc.Engine)}
	maps.Copy(readOnly, hist.handlers(logger))

	a.SetExtra(extra)

	sc := cfg.Monitoring.Sessions
	gid, err := control.LookupGroup(sc.SocketGroup)
	if err != nil {
		return err
	}
	var handlers map[string]http.Handler
	if sc.Socket != "" {
		if handlers, err = src.Handlers(cfg, a); err != nil {
			return err
		}
	}
	ls := &liveStatus{}
	ls.set(src)
	lo := live.Options{
		Alerts:   func() []metrics.ActiveAlert { return alert.Snapshot(al.svc.Engine.Alerts()) },
		Sessions: ls.Sessions,
		Probes:   ls.Probes,
		Version:  version.Get().Version,
		Logger:   logger,
	}
	if hist.engine != nil {
		// A page opened while none was open gets the host's last
		// minutes from the store.
		lo.HostHistory = live.StoreHistory(hist.engine, a.Interval)
	}
	hub := live.NewHub(a, lo)
	maps.Copy(readOnly, hub.Routes())
	srv := web.New(a, extra, web.Options{
		ListenAddress: c.String("web.listen-address"),
		WebConfigFile: c.String("web.config.file"),
		AllowedHosts:  c.StringSlice("web.allowed-hosts"),
		Version:       version.Get().Version,
		Logger:        logger,
		ControlSocket: sc.Socket,
		ControlGroup:  gid,
		// Unprivileged, the agent runs on procfs and cgroupfs; the
		// default socket is then skipped, while one asked for must work.
		ControlOptional: os.Geteuid() != 0 && sc.Socket == config.DefaultControlSocket,
		Handlers:        handlers,
		ReadOnly:        readOnly,
		Page:            live.Page(),
		Alerts:          func() []metrics.ActiveAlert { return alert.Snapshot(al.svc.Engine.Alerts()) },
	})
	if err := srv.Listen(); err != nil {
		return err
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)

	// The store subscribes before the first tick, to keep it too.
	hist.run(a)
	// The first sample is taken before serving, so the first scrape is
	// complete rather than empty.
	first := time.Now()
	a.Tick(ctx)
	releaseStartupPages(logger)
	logger.Info("crmon started",
		"version", version.Get().Version,
		"url", scheme+"://"+srv.Addr()+"/metrics",
		"interval", interval,
		"first_sample", time.Since(first).Round(time.Microsecond),
		"probes", src.ProbeSummary())
	fmt.Fprintf(c.App.ErrWriter, "crmon is serving %s://%s/metrics and %[1]s://%[3]s/api/v1/snapshot\n", scheme, srv.Addr(), srv.Addr())
	fmt.Fprintf(c.App.ErrWriter, "crmon's live page is %s://%s/\n", scheme, srv.Addr())
	if p := srv.ControlSocket(); p != "" {
		fmt.Fprintf(c.App.ErrWriter, "crmon is serving the session API on %s\n", p)
	}
	if hist.store != nil {
		fmt.Fprintf(c.App.ErrWriter, "crmon is keeping history in %s (retention %s) and serving PromQL on %s://%s/api/v1/query\n",
			hist.store.Dir(), cfg.Monitoring.RetentionPeriod, scheme, srv.Addr())
	}
	defer hist.wait(200 * time.Millisecond)

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve() }()
	ran := make(chan error, 1)
	go func() { ran <- a.Run(ctx) }()

	for {
		select {
		case <-hup:
			reloadConfig(c, src, a, al, ls, exp, hist, logger)
		case sig := <-stop:
			logger.Info("stopping", "signal", sig.String())
			cancel()
			stopping = true
			return shutdown(srv, src, ran, logger)
		case err := <-errc:
			if err != nil {
				return err
			}
		}
	}
}

// exportQueueDir is where exporters keep their queues on disk: beside the
// store, while it is enabled; else their queues are in memory unless
// their queue_path says otherwise.
func exportQueueDir(cfg *config.Config) string {
	if !cfg.Monitoring.Store.Enabled {
		return ""
	}
	return filepath.Join(cfg.Monitoring.Store.Path, "exporters")
}

// reloadConfig applies a changed config file. A file that doesn't load
// leaves everything as it was.
func reloadConfig(c *cli.Context, src *sources, a *agent.Agent, al *alerting, ls *liveStatus, exp *export.Set, hist *history, logger *slog.Logger) {
	cfg, err := loadConfig(c)
	if err != nil {
		logger.Error("config reload failed; keeping the running config", "err", err)
		return
	}
	old, err := src.Reload(cfg)
	if err != nil {
		logger.Error("config reload failed; keeping the running config", "err", err)
		return
	}
	a.SetCollectors(src.Collectors())
	ls.set(src)
	if err := closeAll(old); err != nil {
		logger.Warn("closing replaced collectors", "err", err)
	}
	a.SetInterval(cfg.Monitoring.CollectionInterval.Std())
	if err := al.reload(cfg); err != nil {
		logger.Error("alerting reload failed; keeping the running alert channels", "err", err)
	}
	if err := exp.Reload(cfg.Monitoring.Exporters); err != nil {
		logger.Error("exporters reload failed; keeping the running exporters", "err", err)
	}
	hist.reload(cfg, logger)
	logger.Info("config reloaded", "file", c.String("config"), "interval", cfg.Monitoring.CollectionInterval.Std())
	releaseStartupPages(logger)
}

// timerSlack is the agent's default timer slack (internal/timerslack):
// with 4 ms its CPU at 1 s with no container watched was a third lower
// than with the kernel's 50 µs, and 1 ms saved half of that. crmon run
// starts no other program, which would inherit it.
const timerSlack = 4 * time.Millisecond

// gcPercent is the garbage collector's target: the heap may grow to 1.5
// times what is live between two collections instead of twice. The
// scavenger keeps about that much resident, so each MiB of live heap was
// 2.2 MiB of RSS. Two agents side by side, 120 s, both orders, with and
// without: 0 containers, 29.8 / 31.3 → 26.4 / 25.3 MiB for 0.160 / 0.153
// → 0.157 / 0.161 % of a core; beside 1 000 idle containers, 76–96 →
// 68–73 MiB for +0.02–0.03 % (0.70 %). 25 took 13 MiB more off there for
// +0.09 %. With the store on, the TSDB's head makes the live heap several
// times larger, and as much again piled up on it (42.7 → 39.2 MiB beside
// 50 containers, scripts/bench-store.sh).
const gcPercent = 50

// setGCPercent sets gcPercent unless the environment sets GOGC, which the
// runtime has applied: the operator's choice.
func setGCPercent() {
	if _, ok := os.LookupEnv("GOGC"); !ok {
		debug.SetGCPercent(gcPercent)
	}
}

// maxProcs is the agent's default GOMAXPROCS. A tick is one goroutine's
// work; with a P per CPU, each goroutine it wakes (a reader's worker, the
// exit watcher, a scrape) made the runtime wake an idle P's thread to run
// it, which then found nothing and slept again. Side by side beside 150
// idle containers (scripts' two agents at once, 120 s, twice): 0.332,
// 0.351 % of a core at 2 (this host's CPUs) against 0.290, 0.311 % at 1.
// Goroutines still run concurrently, preempted every 10 ms at the most.
const maxProcs = 1

// setMaxProcs sets GOMAXPROCS to n unless the environment sets it, which
// the runtime has applied: the operator's choice. 0 leaves the runtime's
// default.
func setMaxProcs(n int) {
	if _, ok := os.LookupEnv("GOMAXPROCS"); ok || n <= 0 {
		return
	}
	runtime.GOMAXPROCS(n)
}

// setTimerSlack sets the slack of the agent's threads. Without
// CAP_SYS_NICE it cannot, which costs only CPU: logged, not fatal.
func setTimerSlack(d time.Duration, logger *slog.Logger) {
	if d < 0 {
		logger.Warn("--timer-slack is negative: left at the kernel's default", "timer_slack", d)
		return
	}
	if d == 0 {
		return
	}
	if n, err := timerslack.Set("/proc", d); err != nil {
		logger.Info("could not set the timer slack of every thread (needs CAP_SYS_NICE); the agent wakes more often", "threads_set", n, "err", err)
	}
}

// releaseStartupPages hands back the pages of the executable that starting
// (or reloading) ran and the ticks no longer need: package
// initialisation, config parsing, the BPF objects' loading. They stay in
// the page cache; what a tick or a scrape runs comes back on first use.
// On the project's machine this took the executable's share of the
// agent's resident set from 25 to 18 MiB.
func releaseStartupPages(logger *slog.Logger) {
	n, err := textpages.Release("/proc")
	if err != nil {
		logger.Debug("releasing start-up pages", "err", err)
	}
	logger.Debug("released start-up pages", "bytes", n)
}

// loadConfig is the config file (or the defaults) with the flags that
// override it applied, validated once as a whole.
func loadConfig(c *cli.Context) (*config.Config, error) {
	var cfg *config.Config
	if path := c.String("config"); path != "" {
		var err error
		if cfg, err = config.Load(path); err != nil {
			return nil, err
		}
	} else {
		cfg = config.Default()
	}
	if s := c.String("collection-interval"); s != "" {
		d, err := config.ParseDuration(s)
		if err != nil {
			return nil, fmt.Errorf("--collection-interval %q: %w", s, err)
		}
		cfg.Monitoring.CollectionInterval = d
	}
	if c.IsSet("ebpf") {
		cfg.Monitoring.EBPF.Mode = c.String("ebpf")
	}
	if c.IsSet("store.path") {
		cfg.Monitoring.Store.Path = c.String("store.path")
	}
	if c.IsSet("control.socket") {
		cfg.Monitoring.Sessions.Socket = c.String("control.socket")
	}
	if c.IsSet("control.socket-group") {
		cfg.Monitoring.Sessions.SocketGroup = c.String("control.socket-group")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

func buildInfoCollector() prometheus.Collector {
	in := version.Get()
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name:        "crmon_build_info",
		Help:        "crmon's version, revision and Go version; always 1.",
		ConstLabels: prometheus.Labels{"version": in.Version, "revision": in.Revision, "goversion": in.GoVersion},
	}, func() float64 { return 1 })
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
