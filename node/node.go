// Package node runs one sluice process: every configured role (collector,
// syslog listeners, file tailers, PostgreSQL change capture, enrich,
// archivers, warehouse, API) over one bus, started in flow order and
// stopped in the reverse order so that nothing in flight is lost:
//
//  1. stop accepting collector requests and answer those in flight; stop the
//     syslog listeners, the file tailers and the change capture,
//  2. let enrich finish its batch,
//  3. let the archivers flush and commit what they hold,
//  4. close the API, the warehouse and the bus.
package node

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-data/sluice/dashboard"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/bus"
	"github.com/sluice-data/sluice/collect"
	"github.com/sluice-data/sluice/collect/pgcdc"
	"github.com/sluice-data/sluice/collect/tail"
	"github.com/sluice-data/sluice/config"
	"github.com/sluice-data/sluice/enrich"
	"github.com/sluice-data/sluice/enrich/iglu"
	"github.com/sluice-data/sluice/jobs"
	"github.com/sluice-data/sluice/lake"
	"github.com/sluice-data/sluice/pipeline"
	"github.com/sluice-data/sluice/semantic"
	"github.com/sluice-data/sluice/server"
	"github.com/sluice-data/sluice/warehouse"
)

// Node is a running sluice process.
type Node struct {
	cfg     *config.Config
	log     *slog.Logger
	bus     *bus.Bus
	wh      *warehouse.Warehouse
	pgl     *pgLoader // loads PostgreSQL when it is the warehouse
	coll    *collect.Collector
	syslogs []*collect.Syslog
	collL   net.Listener
	apiL    net.Listener
	collS   *http.Server
	apiS    *http.Server
	enr     *enrich.Enricher
	iglu    *iglu.Registry
	arch    []*lake.Archiver
	// compactor merges small files of closed partitions; compactMu keeps
	// its passes (the loop's, the API's) apart.
	compactor *lake.Compactor
	compactMu sync.Mutex
	// pipes are the running pipelines; pipesMu keeps reloads apart.
	pipes   map[string]*running
	pipesMu sync.Mutex
	// pipeCfgMu guards cfg.Pipelines, which a reload replaces (whole: the
	// map is never changed in place) while the status reads it.
	pipeCfgMu sync.RWMutex
	// leaseTTL is how long a pipeline worker's lease lasts (tests shorten it).
	leaseTTL time.Duration
	loader   func() (*config.Config, error)
	tcancel  context.CancelFunc // stops the file tailers and the change capture
	twg      sync.WaitGroup
	cancel   context.CancelFunc // stops enrich
	acanc    context.CancelFunc // stops the archivers
	actx     context.Context    // of the archivers
	store    lake.Store
	// archived are the tables archivers run for (a reload adds pipelines'
	// lake outputs).
	archived []string
	archMu   sync.Mutex
	// sched runs the jobs; jcancel stops its clock.
	sched       *jobs.Scheduler
	jcancel     context.CancelFunc
	jwg         sync.WaitGroup
	jobLeaseTTL time.Duration // tests shorten it
	roll        *rollups
	wg          sync.WaitGroup // enrich
	awg         sync.WaitGroup // archivers
	errs        chan error
	lock        *os.File

	// models is the explore API's semantic model (semantic.go).
	models atomic.Pointer[semantic.Model]
	// dashboards are the UI's dashboards (semantic.go).
	dashboards atomic.Pointer[[]*dashboard.Dashboard]
}

var consumerLag = promauto.NewGaugeVec(prometheus.GaugeOpts{
	Name: "sluice_consumer_lag_messages",
	Help: "Messages of a stream a stage has not yet processed.",
}, []string{"stream", "stage"})

// Start opens everything and starts serving. The caller must call Stop.
func Start(ctx context.Context, cfg *config.Config, log *slog.Logger) (*Node, error) {
	if log == nil {
		log = slog.Default()
	}
	n := &Node{cfg: cfg, log: log, errs: make(chan error, 8)}
	ok := false
	defer func() {
		if !ok {
			n.closeResources()
		}
	}()
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	var err error
	if n.lock, err = lockDataDir(cfg.DataDir); err != nil {
		return nil, err
	}
	n.bus, err = bus.Open(ctx, bus.Options{
		URL: cfg.Bus.URL, Dir: filepath.Join(cfg.DataDir, "bus"), Streams: streamConfigs(cfg), Logger: log,
	})
	if err != nil {
		return nil, err
	}
	store, err := lake.Open(ctx, cfg.LakeURL())
	if err != nil {
		return nil, err
	}
	// A remote lake is read through a local cache (cfg.LakeDir()).
	n.wh, err = warehouse.OpenLake(ctx, filepath.Join(cfg.DataDir, "warehouse.duckdb"), store, cfg.LakeDir())
	if err != nil {
		return nil, err
	}
	if err := n.openPostgres(ctx); err != nil {
		return nil, err
	}
	if int64(cfg.HTTP.MaxBody) > n.bus.MaxPayload()/2 {
		return nil, fmt.Errorf("http.max_body %d is more than half the bus's message limit %d: lower it or raise the NATS server's max_payload", cfg.HTTP.MaxBody, n.bus.MaxPayload())
	}

	// Listen before starting the stages so a taken port fails fast.
	if n.collL, err = net.Listen("tcp", cfg.HTTP.Collector); err != nil {
		return nil, fmt.Errorf("collector listener (http.collector / --collector-addr): %w", err)
	}
	if n.apiL, err = net.Listen("tcp", cfg.HTTP.API); err != nil {
		return nil, fmt.Errorf("API listener (http.api / --api-addr): %w", err)
	}

	actx, acancel := context.WithCancel(context.Background())
	n.acanc = acancel
	n.actx = actx
	n.store = store
	tables := Tables(cfg)
	for _, t := range tables {
		n.startArchiver(t)
	}

	ectx, ecancel := context.WithCancel(context.Background())
	n.cancel = ecancel
	var enrichments []enrich.Enrichment
	for _, e := range []struct {
		on bool
		en enrich.Enrichment
	}{
		{cfg.Enrich.UserAgent, enrich.NewUserAgent()}, {cfg.Enrich.Campaign, enrich.Campaign{}},
		{cfg.Enrich.Referrer, enrich.Referrer{}}, {cfg.Enrich.AnonymizeIP, enrich.AnonymizeIP{}},
	} {
		if e.on {
			enrichments = append(enrichments, e.en)
		}
	}
	if len(cfg.Enrich.Iglu.Registries) > 0 {
		if n.iglu, err = iglu.Open(cfg.Enrich.Iglu.Registries); err != nil {
			return nil, err
		}
	}
	n.enr = enrich.New(enrich.Options{
		Bus: n.bus, DedupeWindow: cfg.Enrich.DedupeWindow.D(), Enrichments: enrichments,
		Iglu: n.iglu, RejectUnknownSchemas: cfg.Enrich.Iglu.Unknown == "bad", Fingerprint: cfg.Enrich.Fingerprint,
		WidenToString: cfg.Enrich.WidenToString,
		Streams:       cfg.SourceStreams(), Logger: log,
	})
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if err := n.enr.Run(ectx); err != nil {
			n.errs <- err
		}
	}()
	if err := n.startPipelines(); err != nil {
		return nil, err
	}
	if err := n.startJobs(); err != nil {
		return nil, err
	}
	if err := n.startRollups(); err != nil {
		return nil, err
	}
	if err := n.loadModels(cfg); err != nil {
		return nil, err
	}
	go n.watchLag(actx)
	n.compactor = NewCompactor(cfg, store, tables, func(table string) {
		if err := n.wh.Refresh(context.Background(), table); err != nil {
			log.Error("warehouse refresh after compaction", "table", table, "err", err)
		}
		n.lakeChanged(table)
	})
	if cfg.Lake.Compaction.Enabled {
		n.awg.Add(1)
		go func() {
			defer n.awg.Done()
			n.compactLoop(actx)
		}()
	}
	if len(cfg.Lake.Retention) > 0 {
		go n.expire(actx, store)
	}

	n.coll = collect.New(collect.Options{
		Store: n.bus, MaxBody: int64(cfg.HTTP.MaxBody), MaxEvents: cfg.HTTP.MaxEvents, WriteKeys: cfg.HTTP.WriteKeys,
		Cookie: cookieOptions(cfg.HTTP.Cookie), Logger: log,
	})
	tctx, tcancel := context.WithCancel(context.Background())
	n.tcancel = tcancel
	for _, name := range slices.Sorted(maps.Keys(cfg.Sources)) {
		src := cfg.Sources[name]
		if src.Type == "file" {
			t, err := tail.New(tail.Options{
				Source: name, Paths: src.Paths, Parse: src.Parse, Pattern: src.Pattern, Multiline: src.Multiline,
				Stream: src.Stream, StateDir: filepath.Join(cfg.DataDir, "tail"), Bus: n.bus, Logger: log,
			})
			if err != nil {
				return nil, fmt.Errorf("source %s: %w", name, err)
			}
			n.twg.Add(1)
			go func() {
				defer n.twg.Done()
				if err := t.Run(tctx); err != nil {
					n.errs <- fmt.Errorf("source %s: %w", name, err)
				}
			}()
			log.Info("tailing", "source", name, "paths", src.Paths)
			continue
		}
		if src.Type == "postgres_cdc" {
			if err := n.startCDC(ctx, tctx, name, src); err != nil {
				return nil, err
			}
			continue
		}
		if src.Type != "syslog" {
			continue
		}
		var tlsConf *tls.Config
		if src.TLS.Cert != "" {
			cert, err := tls.LoadX509KeyPair(src.TLS.Cert, src.TLS.Key)
			if err != nil {
				return nil, fmt.Errorf("source %s: tls: %w", name, err)
			}
			tlsConf = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		}
		s, err := n.coll.ListenSyslog(src.Listen, tlsConf)
		if err != nil {
			return nil, fmt.Errorf("source %s: %w", name, err)
		}
		n.syslogs = append(n.syslogs, s)
		log.Info("syslog listening", "source", name, "listen", s.Addr())
	}
	n.collS = &http.Server{Handler: n.coll.Handler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute}
	tap := server.NewTap(n.bus)
	var cacheSize int64
	if cfg.Semantic.Cache.Enabled {
		cacheSize = int64(cfg.Semantic.Cache.Size)
	}
	n.apiS = &http.Server{Handler: server.Handler(server.Options{Warehouse: n.engine(), Token: cfg.Auth.Token, Replay: n.replay,
		ExploreCacheSize: cacheSize, ExploreCacheAge: cfg.Semantic.Cache.MaxAge.D(),
		Compact: func(ctx context.Context) (any, error) { return n.Compact(ctx, time.Now()) },
		Reload:  n.ReloadConfig, Tap: tap, Jobs: n.sched, Rollups: n.Rollup, RollupNames: n.RollupNames, Models: n.Models, Dashboards: n.Dashboards,
		RebuildRollup: func(ctx context.Context, name string, from, to time.Time) (any, error) {
			return n.RebuildRollup(ctx, name, from, to)
		}, Status: n.Status}), ReadHeaderTimeout: 10 * time.Second}
	n.apiS.RegisterOnShutdown(tap.Close)
	go n.serve(n.collS, n.collL)
	go n.serve(n.apiS, n.apiL)
	if err := server.WriteAddress(cfg.DataDir, server.Address{
		API: "http://" + n.apiL.Addr().String(), Collector: "http://" + n.collL.Addr().String(), PID: os.Getpid(),
	}); err != nil {
		return nil, fmt.Errorf("record server address: %w", err)
	}
	ok = true
	return n, nil
}

// startCDC checks and sets up a postgres_cdc source's database, then follows
// it until the sources stop.
func (n *Node) startCDC(ctx, run context.Context, name string, src config.Source) error {
	s, err := pgcdc.New(pgcdc.Options{
		Source: name, URL: src.URL, Tables: src.Tables, Stream: src.Stream, Slot: src.Slot, Publication: src.Publication,
		Bus: n.bus, Logger: n.log,
	})
	if err != nil {
		return fmt.Errorf("source %s: %w", name, err)
	}
	if err := s.Prepare(ctx); err != nil {
		return fmt.Errorf("source %s: %w", name, err)
	}
	n.twg.Add(1)
	go func() {
		defer n.twg.Done()
		if err := s.Run(run); err != nil {
			n.errs <- fmt.Errorf("source %s: %w", name, err)
		}
	}()
	n.log.Info("capturing changes", "source", name, "tables", src.Tables, "stream", src.Stream, "slot", src.Slot)
	return nil
}

// replay serves the API's bad row replay on this node's bus.
// archiveLakeOutputs starts archivers for pipelines' lake outputs that
// have none yet (after a reload added one).
func (n *Node) archiveLakeOutputs(cfg *config.Config) {
	for _, t := range lakeOutputTables(cfg) {
		n.archMu.Lock()
		has := slices.Contains(n.archived, t.Name)
		n.archMu.Unlock()
		if !has {
			n.log.Info("archiving a new lake output", "table", t.Name, "time", t.PartitionBy)
			n.startArchiver(t)
		}
	}
}

// startArchiver archives a table's stream to the lake until the node stops.
func (n *Node) startArchiver(t lake.Table) {
	cfg, log := n.cfg, n.log
	a := lake.NewArchiver(lake.ArchiverOptions{
		Bus: n.bus, Store: n.store, Table: t, Logger: log,
		FlushInterval: cfg.Lake.FlushInterval.D(), MaxRows: cfg.Lake.MaxRows, MaxBytes: int64(cfg.Lake.MaxBytes),
		// Off the archiver's goroutine: a busy warehouse must never hold
		// up the lake.
		OnCommit: func(table string) {
			go func() {
				if err := n.wh.Refresh(context.Background(), table); err != nil {
					log.Error("warehouse refresh", "table", table, "err", err)
				}
				n.lakeChanged(table)
			}()
		},
	})
	n.archMu.Lock()
	n.arch = append(n.arch, a)
	n.archived = append(n.archived, t.Name)
	n.archMu.Unlock()
	n.awg.Add(1)
	go func() {
		defer n.awg.Done()
		if err := a.Run(n.actx); err != nil {
			n.errs <- err
		}
	}()
}

func (n *Node) replay(ctx context.Context, req server.ReplayRequest) (any, error) {
	n.iglu.Reload()
	return enrich.Replay(ctx, n.bus, replayFilter(req))
}

func replayFilter(req server.ReplayRequest) enrich.ReplayFilter {
	return enrich.ReplayFilter{Types: req.Types, Since: req.Since, Until: req.Until, DryRun: req.DryRun}
}

// Replay hands bad rows back to enrich while no sluice process runs on the
// data dir: it opens the bus alone and puts them on raw, for enrich to take
// at the next start.
func Replay(ctx context.Context, cfg *config.Config, req server.ReplayRequest) (enrich.ReplayResult, error) {
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "bus")); err != nil {
		return enrich.ReplayResult{}, fmt.Errorf("no sluice data in %s (data_dir, --data): nothing to replay", cfg.DataDir)
	}
	lock, err := lockDataDir(cfg.DataDir)
	if err != nil {
		return enrich.ReplayResult{}, err
	}
	defer lock.Close()
	b, err := bus.Open(ctx, bus.Options{URL: cfg.Bus.URL, Dir: filepath.Join(cfg.DataDir, "bus"), Streams: streamConfigs(cfg), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return enrich.ReplayResult{}, err
	}
	defer b.Close()
	return enrich.Replay(ctx, b, replayFilter(req))
}

func streamConfigs(cfg *config.Config) map[string]bus.StreamConfig {
	streams := map[string]bus.StreamConfig{}
	for _, name := range append(slices.Clone(sluice.Streams), cfg.SourceStreams()...) {
		s := cfg.Streams[name]
		streams[name] = bus.StreamConfig{Retention: s.Retention.D(), MaxBytes: int64(s.MaxBytes)}
	}
	for _, name := range cfg.PipelineStreams() {
		if _, ok := streams[name]; !ok {
			streams[name] = bus.StreamConfig{Retention: 7 * 24 * time.Hour}
		}
	}
	return streams
}

func cookieOptions(c config.Cookie) collect.Cookie {
	same := map[string]http.SameSite{"None": http.SameSiteNoneMode, "Lax": http.SameSiteLaxMode, "Strict": http.SameSiteStrictMode}
	return collect.Cookie{
		Name: c.Name, Domain: c.Domain, Expiration: c.Expiration.D(), Secure: c.Secure,
		SameSite: same[c.SameSite], Disabled: !c.Enabled,
	}
}

func (n *Node) serve(s *http.Server, l net.Listener) {
	if err := s.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		n.errs <- err
	}
}

// CollectorURL is the base URL of the collector.
func (n *Node) CollectorURL() string { return "http://" + n.collL.Addr().String() }

// APIURL is the base URL of the API.
func (n *Node) APIURL() string { return "http://" + n.apiL.Addr().String() }

// SyslogAddrs are the syslog listeners' URLs, with the ports actually bound.
func (n *Node) SyslogAddrs() []string {
	var out []string
	for _, s := range n.syslogs {
		out = append(out, s.Addr())
	}
	return out
}

// Errors delivers fatal errors of the stages.
func (n *Node) Errors() <-chan error { return n.errs }

// watchLag publishes consumer lag for /metrics: enrich's, the archivers',
// the pipelines' (stage pipeline/<name>, per input) and the rollups'
// (stage rollup/<name>). A pipeline gone in a reload takes its gauges along.
func (n *Node) watchLag(ctx context.Context) {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	var shown map[[2]string]bool
	for first := true; ; first = false {
		if !first {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
		now := map[[2]string]bool{}
		set := func(stream, stage string, lag uint64, err error) {
			now[[2]string{stream, stage}] = true
			if err == nil {
				consumerLag.WithLabelValues(stream, stage).Set(float64(lag))
			}
		}
		lag, err := n.enr.Lag(ctx)
		set(sluice.StreamRaw, "enrich", lag, err)
		n.archMu.Lock()
		arch := slices.Clone(n.arch)
		n.archMu.Unlock()
		for _, a := range arch {
			lag, err := a.Lag(ctx)
			set(a.Stream(), "archive", lag, err)
		}
		for name, p := range n.pipelineConfigs() {
			lags, err := pipeline.Lag(ctx, n.bus, name, p)
			for stream, lag := range lags {
				set(stream, "pipeline/"+name, lag, err)
			}
		}
		if n.roll != nil {
			for name, r := range n.roll.runners {
				if lag, ok, err := r.Lag(ctx); ok {
					set(cmp(n.cfg.Rollups[name].From, sluice.StreamEvents), "rollup/"+name, lag, err)
				}
			}
		}
		for k := range shown {
			if !now[k] {
				consumerLag.DeleteLabelValues(k[0], k[1])
			}
		}
		shown = now
	}
}

// expire deletes the partitions that lake.retention no longer keeps, at
// start and then hourly.
func (n *Node) expire(ctx context.Context, store lake.Store) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		deleted, err := Expire(ctx, n.cfg, store, time.Now())
		if err != nil {
			n.log.Error("lake retention", "err", err)
		}
		if deleted > 0 {
			n.log.Info("lake retention: deleted expired files", "files", deleted)
			if err := n.wh.RefreshAll(ctx); err != nil {
				n.log.Error("warehouse refresh after retention", "err", err)
			}
			n.lakeChanged("")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Expire deletes, table by table, the lake files lake.retention no longer
// keeps, and returns how many it deleted.
func Expire(ctx context.Context, cfg *config.Config, store lake.Store, now time.Time) (int, error) {
	deleted := 0
	for _, table := range slices.Sorted(maps.Keys(cfg.Lake.Retention)) {
		keys, err := lake.Expire(ctx, store, table, cfg.Lake.Retention[table].D(), now)
		deleted += len(keys)
		if err != nil {
			return deleted, fmt.Errorf("expire %s: %w", table, err)
		}
	}
	return deleted, nil
}

// Stop drains and stops every role in flow order.
func (n *Node) Stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	server.RemoveAddress(n.cfg.DataDir)
	var errs []error
	if err := n.collS.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("collector: %w", err))
	}
	for _, s := range n.syslogs {
		s.Close()
	}
	n.syslogs = nil
	n.tcancel()
	n.twg.Wait()
	n.coll.Close()
	n.cancel()
	n.wg.Wait()
	n.stopPipelines()
	n.stopRollups()
	n.stopJobs()
	n.acanc()
	n.awg.Wait()
	if n.pgl != nil {
		// The archivers' last commits reach PostgreSQL before it closes.
		n.pgl.syncAll(ctx, n.cfg)
		n.pgl.drain(ctx)
	}
	if err := n.apiS.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("api: %w", err))
	}
	n.closeResources()
	return errors.Join(errs...)
}

func (n *Node) closeResources() {
	n.stopPipelines()
	n.stopRollups()
	n.stopJobs()
	if n.tcancel != nil {
		n.tcancel()
		n.twg.Wait()
	}
	for _, s := range n.syslogs {
		s.Close()
	}
	n.syslogs = nil
	for _, l := range []net.Listener{n.collL, n.apiL} {
		if l != nil {
			l.Close()
		}
	}
	if n.pgl != nil {
		n.pgl.close()
	}
	if n.wh != nil {
		n.wh.Close()
	}
	if n.bus != nil {
		n.bus.Close()
	}
	if n.lock != nil {
		n.lock.Close()
	}
}

// pipelineConfigs are the configured pipelines (the map is not to be
// changed).
func (n *Node) pipelineConfigs() map[string]config.Pipeline {
	n.pipeCfgMu.RLock()
	defer n.pipeCfgMu.RUnlock()
	return n.cfg.Pipelines
}
