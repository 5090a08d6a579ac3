package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"time"

	"github.com/sluice-data/sluice/bus"
	"github.com/sluice-data/sluice/config"
	"github.com/sluice-data/sluice/pipeline"
)

// running is one running pipeline.
type running struct {
	cfg    config.Pipeline
	cancel context.CancelFunc
	done   chan struct{}
	group  *pipeline.Group
}

// startPipelines starts the config's pipelines; they stop after enrich
// (whose output they read) and before the archivers and the warehouse.
func (n *Node) startPipelines() error {
	n.pipes = map[string]*running{}
	for _, name := range slices.Sorted(maps.Keys(n.cfg.Pipelines)) {
		if err := n.startPipeline(name, n.cfg.Pipelines[name]); err != nil {
			return err
		}
	}
	return nil
}

func (n *Node) startPipeline(name string, pc config.Pipeline) error {
	member, err := memberName(n.cfg.DataDir)
	if err != nil {
		return err
	}
	g, err := pipeline.NewGroup(pipeline.Options{
		Name: name, Config: pc, Bus: n.bus, Tables: n.tables(), Lookups: n.lookups(), Logger: n.log, Member: member,
		LeaseTTL: n.leaseTTL,
	})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cfg: pc, cancel: cancel, done: make(chan struct{}), group: g}
	n.pipes[name] = r
	go func() {
		defer close(r.done)
		g.Run(ctx)
	}()
	n.log.Info("pipeline running", "pipeline", name, "from", fmt.Sprint(pc.From), "workers", max(pc.Workers, 1))
	return nil
}

// memberName names this process among those sharing pipelines' workers:
// kept in the data dir, so that a restarted process takes its own leases
// back at once instead of waiting for them to expire.
func memberName(dataDir string) (string, error) {
	path := filepath.Join(dataDir, "member")
	if b, err := os.ReadFile(path); err == nil && len(bytes.TrimSpace(b)) > 0 {
		return string(bytes.TrimSpace(b)), nil
	}
	host, _ := os.Hostname()
	b := make([]byte, 6)
	rand.Read(b)
	name := fmt.Sprintf("%s-%x", host, b)
	if err := os.WriteFile(path, []byte(name+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("pipeline member name: %w", err)
	}
	return name, nil
}

// stopPipeline stops one pipeline; it saves its checkpoint after the
// outputs of what it read, so the next version goes on from there.
func (n *Node) stopPipeline(name string) {
	if r := n.pipes[name]; r != nil {
		r.cancel()
		<-r.done
		delete(n.pipes, name)
	}
}

// tables is where pipelines write their tables: the active warehouse.
func (n *Node) tables() pipeline.TableWriter {
	if n.pgl != nil {
		return n.pgl.pg
	}
	return n.wh
}

func (n *Node) stopPipelines() {
	n.pipesMu.Lock()
	defer n.pipesMu.Unlock()
	for _, name := range slices.Sorted(maps.Keys(n.pipes)) {
		n.stopPipeline(name)
	}
	n.pipes = nil // no reload after this
}

// ReloadReport tells what a reload changed.
type ReloadReport struct {
	Started   []string `json:"started"`
	Restarted []string `json:"restarted"`
	Stopped   []string `json:"stopped"`
	Unchanged []string `json:"unchanged"`
	// Ignored are top-level sections that changed but take a restart.
	Ignored []string `json:"ignored,omitempty"`
}

// Reload applies a new config's pipelines without a restart: pipelines
// that are new start, those that changed stop (saving their position) and
// start again in their new form from that position, those gone stop. No
// message is lost or processed twice by the swap. The semantic models are
// read again. Changes to other sections are reported as needing a restart,
// and not applied.
func (n *Node) Reload(ctx context.Context, cfg *config.Config) (ReloadReport, error) {
	n.pipesMu.Lock()
	defer n.pipesMu.Unlock()
	var rep ReloadReport
	if n.pipes == nil {
		return rep, errors.New("sluice is stopping")
	}
	old, cur := reflect.ValueOf(*n.cfg), reflect.ValueOf(*cfg)
	for i := range old.NumField() {
		f := old.Type().Field(i)
		if f.Name == "Pipelines" || f.Name == "Semantic" {
			continue
		}
		if !reflect.DeepEqual(old.Field(i).Interface(), cur.Field(i).Interface()) {
			rep.Ignored = append(rep.Ignored, yamlName(f))
		}
	}
	// Build every new or changed pipeline first: a broken one changes
	// nothing.
	for _, name := range slices.Sorted(maps.Keys(cfg.Pipelines)) {
		if r := n.pipes[name]; r == nil || !reflect.DeepEqual(r.cfg, cfg.Pipelines[name]) {
			if _, err := pipeline.New(pipeline.Options{Name: name, Config: cfg.Pipelines[name], Bus: n.bus, Tables: n.tables(), Lookups: n.lookups()}); err != nil {
				return rep, err
			}
		}
	}
	for _, s := range cfg.PipelineStreams() {
		if err := n.bus.EnsureStream(ctx, s, bus.StreamConfig{Retention: 7 * 24 * time.Hour}); err != nil {
			return rep, err
		}
	}
	// After the pipelines are built: a reload they refuse keeps the models.
	if err := n.loadModels(cfg); err != nil {
		return rep, err
	}
	n.archiveLakeOutputs(cfg)
	for _, name := range slices.Sorted(maps.Keys(n.pipes)) {
		if _, ok := cfg.Pipelines[name]; !ok {
			n.stopPipeline(name)
			rep.Stopped = append(rep.Stopped, name)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(cfg.Pipelines)) {
		pc := cfg.Pipelines[name]
		r := n.pipes[name]
		switch {
		case r == nil:
			rep.Started = append(rep.Started, name)
		case reflect.DeepEqual(r.cfg, pc):
			rep.Unchanged = append(rep.Unchanged, name)
			continue
		default:
			n.stopPipeline(name)
			rep.Restarted = append(rep.Restarted, name)
		}
		if err := n.startPipeline(name, pc); err != nil {
			return rep, err
		}
	}
	n.pipeCfgMu.Lock()
	n.cfg.Pipelines = cfg.Pipelines
	n.pipeCfgMu.Unlock()
	n.log.Info("config reloaded", "started", rep.Started, "restarted", rep.Restarted, "stopped", rep.Stopped, "needs_restart", rep.Ignored)
	return rep, nil
}

func yamlName(f reflect.StructField) string {
	name := f.Tag.Get("yaml")
	if name == "" {
		return f.Name
	}
	return name
}

// SetConfigLoader gives the node the way to read its config again, for
// POST /api/v1/reload (sluice up sets it; SIGHUP calls Reload itself).
func (n *Node) SetConfigLoader(load func() (*config.Config, error)) {
	n.pipesMu.Lock()
	n.loader = load
	n.pipesMu.Unlock()
}

// ReloadConfig reads the config again (SetConfigLoader) and reloads it.
func (n *Node) ReloadConfig(ctx context.Context) (any, error) {
	n.pipesMu.Lock()
	load := n.loader
	n.pipesMu.Unlock()
	if load == nil {
		return nil, errors.New("this sluice was started without a config loader: send SIGHUP to `sluice up`, or restart it")
	}
	cfg, err := load()
	if err != nil {
		return nil, err
	}
	return n.Reload(ctx, cfg)
}
