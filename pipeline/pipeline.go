// Package pipeline runs the user pipelines of the config file: events read
// from streams (or Kafka topics, see kafka.go) go through steps (filter,
// set, drop, keep, rename, parse, route, dedupe, sample, lookup, throttle,
// window) to outputs (streams, lake tables (lake.go), warehouse tables,
// Kafka topics, files, webhooks). With workers, the work is split into
// partitions shared out between processes (workers.go).
//
// Delivery. A pipeline keeps its own position on each input stream in the
// bus's state bucket (key pipeline.<name>), saved only after every output
// of the messages before it was stored; after a crash it reads again from
// there. Stream outputs carry a message id per input message and output, so
// the bus drops what it already stored; window results are written keyed by
// window_start and group, so a result written twice is one row.
//
// Windows are exactly-once: the position saved is that of the first message
// any open window depends on, and the checkpoint also records the event time
// up to which windows are final. After a restart the open windows are
// rebuilt whole from the messages read again, and events of final windows
// are skipped: every window is emitted with its whole value, and a window
// emitted before the crash is written again with the same value.
package pipeline

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/bus"
	"github.com/sluice-data/sluice/collect/tail"
	"github.com/sluice-data/sluice/config"
)

// BadPipelineFailure is the bad-row type of an event a step could not
// process (an expression error, a field of the wrong type).
const BadPipelineFailure = "pipeline_failure"

// TableWriter writes result rows into warehouse tables.
type TableWriter interface {
	// WriteRows writes rows into table, creating it, and adding columns,
	// as needed. Rows whose key columns equal an existing row's replace it;
	// an empty key appends.
	WriteRows(ctx context.Context, table string, key []string, rows []map[string]any) error
}

// Options configure a pipeline.
type Options struct {
	Name   string
	Config config.Pipeline
	Bus    *bus.Bus
	Tables TableWriter
	Logger *slog.Logger
	// Lookups reads the warehouse tables of lookup steps.
	Lookups TableReader
	// Simulation: the pipeline only runs Simulate (sluice test), so it
	// needs no bus and no warehouse.
	Simulation bool
	// MaxBatch is how many messages are processed between writes of the
	// outputs; default 100.
	MaxBatch int
	// Partition is the part of the work this worker does, of Partitions
	// (config workers; see Group). Zero Partitions: 1.
	Partition, Partitions int
	// Member names this process among those sharing the pipeline's
	// workers (Group); default: a random name.
	Member string
	// LeaseTTL is how long a worker's lease lasts without renewal (Group):
	// after a process dies, its workers restart elsewhere after this long.
	// Default 10s.
	LeaseTTL time.Duration
	// FilePoll is how often a file input looks for new files and lines;
	// default 250ms. FileRotateWait is how long it reads a file rotated
	// away after it last grew; default 5s.
	FilePoll, FileRotateWait time.Duration
}

var (
	eventsIn = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_pipeline_events_in_total", Help: "Events a pipeline read.",
	}, []string{"pipeline"})
	eventsOut = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_pipeline_events_out_total", Help: "Events and window results a pipeline wrote, per output.",
	}, []string{"pipeline", "output"})
	badEvents = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_pipeline_bad_total", Help: "Events a pipeline's steps could not process (sent to bad).",
	}, []string{"pipeline"})
	heldBytes = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "sluice_pipeline_held_bytes", Help: "Bytes of messages a pipeline holds: read ahead and in process (bounded by pipelines.<name>.memory).",
	}, []string{"pipeline"})
	lateEvents = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "sluice_pipeline_late_events", Help: "Events ignored because their window was final, since start.",
	}, []string{"pipeline"})
)

// Pipeline is one running pipeline.
type Pipeline struct {
	o      Options
	log    *slog.Logger
	pre    []step // steps before the window (all of them when none)
	post   []step // steps after the window
	labels []string
	win    *window
	winKey []string
	rev    uint64 // of the checkpoint
	sinks  *sinks // file and webhook outputs
	// readers are the bus inputs (their memory is measured).
	readers []*bus.Reader
	saved   time.Time
	// savedNext is the position the last checkpoint saved (zero: none
	// saved by this run).
	savedNext position

	lakes     map[string]*lakeOut // schemas of the lake outputs, by table
	kafka     []*kafkaInput       // of this run
	files     *fileInput          // of this run
	starts    fileStarts          // of the file chunks open windows may depend on
	producers producers           // of the Kafka outputs

	// pre reads the fields the leading filters need (nil: none, or the
	// whole event is needed first).
	pf *prefilter
	// lanes process the messages of a batch in parallel (nil: one at a
	// time); see parallel.go.
	lanes []*Pipeline
	in    prometheus.Counter // sluice_pipeline_events_in_total of this pipeline

	// part of parts: the worker this is; key splits events between the
	// workers (empty: whole messages by sequence number).
	part, parts int
	key         []string
	// others are the checkpoints of another number of workers this one
	// started from; worker 0 deletes them once every worker saved its own.
	others []string
}

// position is where a pipeline is: the next message of each stream, the
// state of each file after the last chunk processed, and the size of each
// file output after the outputs of all that.
type position struct {
	streams map[string]uint64
	files   map[string]tail.FileState // by fileID
	outputs map[string]fileMark       // by path
}

func (ps position) clone() position {
	return position{streams: maps.Clone(ps.streams), files: maps.Clone(ps.files), outputs: maps.Clone(ps.outputs)}
}

// equal tells whether ps and o are the same position.
func (ps position) equal(o position) bool {
	return maps.Equal(ps.streams, o.streams) && maps.Equal(ps.files, o.files) && maps.Equal(ps.outputs, o.outputs)
}

// done moves the position past a processed message.
func (ps *position) done(it item) {
	if it.file == nil {
		ps.streams[it.stream] = it.m.Seq + 1
		return
	}
	if it.file.done {
		delete(ps.files, fileID(it.file.state))
		return
	}
	ps.files[fileID(it.file.state)] = it.file.state
}

// checkpoint is a pipeline's durable position.
type checkpoint struct {
	// Positions: per input stream, the next message to read.
	Positions map[string]uint64 `json:"positions"`
	// Read: per input stream, the next message the pipeline would have
	// read, where Positions wait for an open window's first message (with
	// a window only; else they are the same). The pipeline's lag is
	// measured from it.
	Read map[string]uint64 `json:"read,omitempty"`
	// Files: the file input's files, each with its state after the last
	// chunk read (or the first one an open window depends on).
	Files *tail.State `json:"files,omitempty"`
	// Outputs: each file output's size after the outputs of everything
	// before the positions, by path (one worker only; see sinks).
	Outputs map[string]fileMark `json:"outputs,omitempty"`
	// Final: windows ending at or before it were emitted for good.
	Final time.Time `json:"final,omitzero"`
	Saved time.Time `json:"saved"`
}

// New checks and builds a pipeline; Run starts it.
func New(o Options) (*Pipeline, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 100
	}
	if o.Partitions <= 0 {
		o.Partitions = 1
	}
	p := &Pipeline{o: o, log: o.Logger.With("pipeline", o.Name), producers: producers{}, sinks: newSinks(),
		part: o.Partition, parts: o.Partitions, in: eventsIn.WithLabelValues(o.Name)}
	if p.parts > 1 {
		p.key = o.Config.PartitionKey()
		p.log = p.log.With("worker", fmt.Sprintf("%d/%d", p.part, p.parts))
	}
	for i, s := range o.Config.Steps {
		if s.Window != nil {
			w, err := newWindow(*s.Window)
			if err != nil {
				return nil, fmt.Errorf("pipeline %s: steps[%d]: %w", o.Name, i, err)
			}
			p.win = w
			p.winKey = append([]string{"window_start"}, s.Window.GroupBy...)
			continue
		}
		st, err := newStep(s, o)
		if err != nil {
			return nil, fmt.Errorf("pipeline %s: steps[%d]: %w", o.Name, i, err)
		}
		if p.win == nil {
			p.pre = append(p.pre, st)
		} else {
			p.post = append(p.post, st)
		}
		p.labels = append(p.labels, fmt.Sprintf("steps[%d]", i))
	}
	if p.win == nil && !p.keyed() {
		p.pf = newPrefilter(o.Config.Steps)
	}
	for _, out := range o.Config.To {
		if out.Table != "" && o.Tables == nil && !o.Simulation {
			return nil, fmt.Errorf("pipeline %s: no warehouse to write table %s to", o.Name, out.Table)
		}
	}
	return p, nil
}

// stateKey is where the checkpoint is.
func (p *Pipeline) stateKey() string { return checkpointKey(p.o.Name, p.part, p.parts) }

// checkpointKey is where a pipeline's checkpoint is: pipeline.<name> for
// one worker, pipeline.<name>.<i>of<n> for worker i of n.
func checkpointKey(name string, part, parts int) string {
	if parts > 1 {
		return fmt.Sprintf("pipeline.%s.%dof%d", name, part, parts)
	}
	return "pipeline." + name
}

// keyed tells whether events are split between workers by key (else by
// message, or there is one worker).
func (p *Pipeline) keyed() bool { return p.parts > 1 && len(p.key) > 0 }

// mine tells whether an event (keyed) or a message is this worker's.
func (p *Pipeline) mine(ev Event, seq uint64) bool {
	if p.parts <= 1 {
		return true
	}
	if ev == nil || len(p.key) == 0 {
		return int(seq%uint64(p.parts)) == p.part
	}
	h := fnv.New64a()
	for _, k := range p.key {
		switch v := ev[k].(type) {
		case nil:
		case string:
			h.Write([]byte(v))
		default:
			fmt.Fprint(h, v)
		}
		h.Write([]byte{0})
	}
	return int(h.Sum64()%uint64(p.parts)) == p.part
}

// Run reads and processes until ctx is done.
func (p *Pipeline) Run(ctx context.Context) error {
	cp, err := p.load(ctx)
	if err != nil {
		return err
	}
	defer p.sinks.close()
	p.sinks.start(cp.Outputs, p.parts <= 1, p.log)
	if p.win != nil {
		p.win.final, p.win.resumed = cp.Final, cp.Final
	}
	p.lakes = nil
	for _, o := range p.allOutputs() {
		if o.Lake != "" {
			if _, err := p.lakeOf(ctx, o.Lake, o.Time); err != nil {
				return err
			}
		}
	}
	p.savedNext = position{}
	p.log.Info("pipeline starting", "positions", cp.Positions, "final", cp.Final)
	defer p.producers.close()
	in := make(chan item, p.o.MaxBatch)
	rctx, rcancel := context.WithCancel(ctx)
	defer rcancel()
	var wg sync.WaitGroup
	p.readers = nil
	held := p.measureHeld
	p.kafka = nil
	p.files, p.starts = nil, fileStarts{}
	lanes := p.laneCount()
	for _, input := range p.o.Config.From {
		s := input.Stream
		if input.File != nil {
			f, err := newFileInput(p.o.Name, input.File, p.o.Config.Start, cp, p.o, p.budget(), lanes)
			if err != nil {
				return err
			}
			p.files = f
			wg.Add(1)
			go func() {
				defer wg.Done()
				f.read(rctx, in)
			}()
			continue
		}
		if config.IsKafkaURL(s) {
			k, err := newKafkaInput(p.o.Name, s, p.o.Config.Start, p.log)
			if err != nil {
				return fmt.Errorf("pipeline %s: %w", p.o.Name, err)
			}
			// Closed after the last commit (at return, save runs first).
			defer k.close()
			p.kafka = append(p.kafka, k)
			wg.Add(1)
			go func() {
				defer wg.Done()
				k.read(rctx, in)
			}()
			continue
		}
		// Half the budget holds messages read ahead, shared by the inputs.
		r, err := p.o.Bus.ReadFromBounded(rctx, s, cp.Positions[s], p.budget()/2/int64(len(p.o.Config.From.Streams())))
		if err != nil {
			return fmt.Errorf("pipeline %s: %w", p.o.Name, err)
		}
		p.readers = append(p.readers, r)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer r.Close()
			for m := range r.C() {
				select {
				case in <- item{stream: s, m: m, release: func() { r.Release(m) }}:
				case <-rctx.Done():
					return
				}
			}
		}()
	}
	defer wg.Wait()
	defer rcancel()
	if err := p.makeLanes(lanes); err != nil {
		return err
	}

	last := position{streams: maps.Clone(cp.Positions), files: map[string]tail.FileState{}, outputs: maps.Clone(cp.Outputs)}
	maps.DeleteFunc(last.outputs, func(path string, _ fileMark) bool {
		return !slices.ContainsFunc(p.allOutputs(), func(o config.Output) bool { return o.File == path })
	})
	if cp.Files != nil {
		for _, st := range cp.Files.Files {
			last.files[fileID(st)] = st
		}
	}
	lastEvent := time.Now()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		var batch []item
		select {
		case <-ctx.Done():
			return p.save(context.WithoutCancel(ctx), last, true)
		case it := <-in:
			batch = append(batch, it)
			size := len(it.m.Data)
		fill:
			// A batch is bounded by count and by a quarter of the budget.
			for len(batch) < p.o.MaxBatch && int64(size) < p.budget()/4 {
				select {
				case it := <-in:
					batch = append(batch, it)
					size += len(it.m.Data)
				default:
					break fill
				}
			}
		case now := <-tick.C:
			held()
			if p.win == nil || now.Sub(lastEvent) < p.win.idle() {
				// Saves are at most twice a second, so the last batch's
				// may have been left out: saved now, the checkpoint (and
				// the lag measured from it) does not stay behind while no
				// message comes.
				if !last.equal(p.savedNext) {
					if err := p.save(ctx, last, false); err != nil && ctx.Err() == nil {
						return err
					}
				}
				continue
			}
			// Nothing new for a while: time moves on by the clock, so the
			// last windows close.
			p.win.advanceTo(now.Add(-p.win.delay))
		}
		held()
		out := newOutputs()
		// Where the outputs written so far end: saved when the pipeline is
		// stopped in the middle of this batch, so that the next owner (a
		// worker handed to another process, a reload) does not repeat the
		// batches before it. Not with a window: the batch may have made
		// windows final whose results are not written.
		before := last.clone()
		stopped := func() error {
			if p.win == nil {
				return p.save(context.WithoutCancel(ctx), before, true)
			}
			return nil
		}
		if err := p.processBatch(ctx, batch, out, &last); err != nil {
			if ctx.Err() != nil {
				return stopped()
			}
			return err
		}
		if len(batch) > 0 {
			lastEvent = time.Now()
		}
		if p.win != nil {
			for _, row := range p.win.emit() {
				p.through(p.post, row, "", 0, out, true)
			}
			lateEvents.WithLabelValues(p.o.Name).Set(float64(p.win.late))
		}
		if err := p.write(ctx, out); err != nil {
			if ctx.Err() != nil {
				return stopped() // ctx ended while writing
			}
			return err
		}
		if p.parts <= 1 && len(p.sinks.sizes) > 0 {
			if last.outputs == nil {
				last.outputs = map[string]fileMark{}
			}
			maps.Copy(last.outputs, p.sinks.sizes)
		}
		if err := p.save(ctx, last, false); err != nil {
			return err
		}
		for _, it := range batch {
			if it.release != nil {
				it.release()
			}
		}
	}
}

// measureHeld publishes the bytes the pipeline's readers hold.
func (p *Pipeline) measureHeld() {
	var n int64
	for _, r := range p.readers {
		n += r.Held()
	}
	heldBytes.WithLabelValues(p.o.Name).Set(float64(n))
}

// budget is the memory the pipeline's messages may hold: read ahead, and in
// the batch being processed (pipelines.<name>.memory).
func (p *Pipeline) budget() int64 {
	if m := int64(p.o.Config.Memory); m > 0 {
		return m
	}
	return 64 << 20
}

// item is a message read from an input: a stream, a Kafka topic's
// partition (rec is the record; m.Seq is its offset), or a chunk of a file
// (file; m.Seq is its first byte's offset, m.Data its records).
type item struct {
	stream string
	m      bus.Msg
	rec    *kgo.Record
	file   *fileChunk
	// release hands the message's memory back to its reader's budget.
	release func()
}

// outputs collects what a batch produces, per output.
type outputs struct {
	rows  map[config.Output][]Event // tables, Kafka topics, window results for streams
	keyed map[config.Output]bool
	// lines are the NDJSON rows of file and webhook outputs, encoded as
	// they come (count of them) rather than held as events.
	lines map[config.Output][]byte
	count map[config.Output]int
	msgs  []bus.Outgoing // stream outputs of single messages (ids per message)
	bad   []badRow
}

// badRow is a bad row, the input message it came from (stream and
// sequence; a file's chunk by its start) and a key naming it: the step and
// the payload that failed there. The row itself holds the time it failed,
// so read again after a crash it would differ; its key does not.
type badRow struct {
	src  string
	seq  uint64
	key  [12]byte
	line []byte
}

func newOutputs() *outputs {
	return &outputs{rows: map[config.Output][]Event{}, keyed: map[config.Output]bool{},
		lines: map[config.Output][]byte{}, count: map[config.Output]int{}}
}

// ndjson tells whether an output takes NDJSON lines (outputs.lines).
func ndjson(o config.Output) bool { return o.File != "" || o.Webhook != "" }

// addLine encodes row for a file or webhook output.
func (out *outputs) addLine(o config.Output, row Event) error {
	b, err := encode(out.lines[o], row)
	if err != nil {
		return err
	}
	out.lines[o] = b
	out.count[o]++
	return nil
}

// merge appends what another part of the batch produced (the batch's
// messages processed in parallel, merged in their order).
func (out *outputs) merge(part *outputs) {
	for o, rows := range part.rows {
		out.rows[o] = append(out.rows[o], rows...)
	}
	for o, k := range part.keyed {
		out.keyed[o] = k
	}
	for o, b := range part.lines {
		out.lines[o] = append(out.lines[o], b...)
		out.count[o] += part.count[o]
	}
	out.msgs = append(out.msgs, part.msgs...)
	out.bad = append(out.bad, part.bad...)
}

// process runs the events of one message through the steps before the
// window (or all of them).
func (p *Pipeline) process(ctx context.Context, it item, out *outputs) error {
	stream, m := it.stream, it.m
	per := map[config.Output][]byte{}
	if !p.keyed() && !p.mine(nil, m.Seq) {
		return ctx.Err() // another worker's message
	}
	where := func() string { return fmt.Sprintf("%s message %d", stream, m.Seq) }
	if it.file != nil {
		where = func() string { return p.files.where(it) }
		if p.win != nil {
			p.starts.add(it)
		}
		plain := p.files.parse == config.FileParsePlain
		err := sluice.ReadRecords(m.Data, func(rec []byte, truncated bool) error {
			p.in.Inc()
			if truncated {
				out.bad = append(out.bad, p.badLine(where(), stream, m.Seq, "read", fmt.Errorf("a record longer than %d bytes; the payload holds its start", len(rec)), rec))
				return nil
			}
			if plain {
				p.event(it, Event{"message": string(rec)}, 0, rec, where, per, out)
				return nil
			}
			if len(bytes.TrimSpace(rec)) == 0 {
				return nil
			}
			from := 0
			if p.pf != nil {
				if from = p.prefilter(rec, stream, m.Seq, where, out); from < 0 {
					return nil
				}
			}
			ev, err := decode(rec)
			if err != nil {
				out.bad = append(out.bad, p.badLine(where(), stream, m.Seq, "decode", err, rec))
				return nil
			}
			p.event(it, ev, from, rec, where, per, out)
			return nil
		})
		if err != nil {
			return err
		}
	} else {
		for line := range bytes.Lines(m.Data) {
			if len(bytes.TrimSpace(line)) == 0 {
				continue
			}
			from := 0
			if p.pf != nil && it.rec == nil {
				p.in.Inc()
				if from = p.prefilter(line, stream, m.Seq, where, out); from < 0 {
					continue
				}
				ev, err := decode(line)
				if err != nil {
					out.bad = append(out.bad, p.badLine(where(), stream, m.Seq, "decode", err, line))
					continue
				}
				p.event(it, ev, from, line, where, per, out)
				continue
			}
			ev, err := decode(line)
			if err != nil {
				if p.mine(nil, m.Seq) {
					p.in.Inc()
					out.bad = append(out.bad, p.badLine(where(), stream, m.Seq, "decode", err, line))
				}
				continue
			}
			if it.rec != nil {
				recordFields(ev, it.rec)
			}
			if p.win != nil {
				// Every event read moves event time on, also those the steps
				// drop before the window and other workers' events.
				if t, ok := asTime(ev[p.win.timeField]); ok {
					p.win.advanceTo(t.Add(-p.win.delay))
				}
			}
			if !p.mine(ev, m.Seq) {
				continue
			}
			p.in.Inc()
			p.event(it, ev, 0, line, where, per, out)
		}
	}
	for _, o := range slices.SortedFunc(maps.Keys(per), func(a, b config.Output) int { return compareOutput(a, b) }) {
		// The message id makes a message written again (after a crash) one
		// message. Split by key, each worker writes its own part of it. A
		// file's chunk is named by its first and last byte: read again
		// after a crash it may end further on, if the file grew.
		id := fmt.Sprintf("pipeline:%s:%s:%d:%s", p.o.Name, stream, m.Seq, o.BusStream())
		switch {
		case it.file != nil:
			id = fmt.Sprintf("pipeline:%s:%s:%d-%d:%s", p.o.Name, stream, m.Seq, it.file.state.Offset, o.BusStream())
		case p.keyed():
			id = fmt.Sprintf("pipeline:%s:%dof%d:%s:%d:%s", p.o.Name, p.part, p.parts, stream, m.Seq, o.BusStream())
		}
		out.msgs = append(out.msgs, bus.Outgoing{Stream: o.BusStream(), Data: per[o], MsgID: id})
		eventsOut.WithLabelValues(p.o.Name, o.String()).Add(float64(bytes.Count(per[o], []byte{'\n'})))
	}
	return ctx.Err()
}

// event runs one event of message it (read from line) through the steps
// before the window (or all of them) from step from on, into the window or
// the outputs: per gathers the encoded rows of stream outputs.
func (p *Pipeline) event(it item, ev Event, from int, line []byte, where func() string, per map[config.Output][]byte, out *outputs) {
	if p.win != nil && it.file != nil {
		// As for a stream's events, in process.
		if t, ok := asTime(ev[p.win.timeField]); ok {
			p.win.advanceTo(t.Add(-p.win.delay))
		}
	}
	seq := it.m.Seq
	res, to, label, err := p.apply(p.pre[from:], ev, from)
	switch {
	case err != nil:
		out.bad = append(out.bad, p.badLine(where(), it.stream, seq, label, err, line))
		return
	case res == nil:
		return
	case to == nil && p.win != nil:
		if err := p.win.add(res, it.stream, seq); err != nil {
			out.bad = append(out.bad, p.badLine(where(), it.stream, seq, "window", err, line))
		}
		return
	}
	if to == nil {
		to = p.o.Config.To
	}
	for _, o := range to {
		if o.BusStream() != "" {
			row := res
			if o.Lake != "" {
				if row, err = p.lakes[o.Lake].conform(res); err != nil {
					out.bad = append(out.bad, p.badLine(where(), it.stream, seq, "to lake "+o.Lake, err, line))
					continue
				}
			}
			b, err := encode(per[o], row)
			if err != nil {
				out.bad = append(out.bad, p.badLine(where(), it.stream, seq, "output", err, line))
				continue
			}
			per[o] = b
			continue
		}
		if ndjson(o) {
			if err := out.addLine(o, res); err != nil {
				out.bad = append(out.bad, p.badLine(where(), it.stream, seq, "output", err, line))
			}
			continue
		}
		out.rows[o] = append(out.rows[o], res)
	}
}

// allOutputs are the pipeline's outputs and its routes'.
func (p *Pipeline) allOutputs() []config.Output { return allOutputsOf(p.o.Config) }

func allOutputsOf(c config.Pipeline) []config.Output {
	out := slices.Clone(c.To)
	for _, s := range c.Steps {
		for _, r := range s.Route {
			out = append(out, r.To...)
		}
	}
	return out
}

func compareOutput(a, b config.Output) int {
	if a.BusStream() != b.BusStream() {
		if a.BusStream() < b.BusStream() {
			return -1
		}
		return 1
	}
	if a.Table < b.Table {
		return -1
	} else if a.Table > b.Table {
		return 1
	}
	return 0
}

// apply runs ev through steps; it returns the event (nil: dropped), the
// outputs a route chose, and on error the step's label.
func (p *Pipeline) apply(steps []step, ev Event, offset int) (Event, config.Outputs, string, error) {
	now := time.Now()
	retries := p.o.Config.Retries
	for i, s := range steps {
		var to config.Outputs
		var err error
		var before Event
		if retries > 0 {
			before = maps.Clone(ev)
		}
		ev, to, err = s.apply(ev, now)
		// Only the failing step is tried again, on the event as it came
		// to it: the steps before it (a dedupe, a throttle) saw it once.
		for try := 0; err != nil && try < retries; try++ {
			ev, to, err = s.apply(maps.Clone(before), now)
		}
		if err != nil {
			if retries > 0 {
				err = fmt.Errorf("%w (tried %d times)", err, retries+1)
			}
			return nil, nil, p.labels[offset+i], err
		}
		if ev == nil || to != nil {
			return ev, to, "", nil
		}
	}
	return ev, nil, "", nil
}

// through runs a window result through the steps after the window and
// collects it for its outputs.
func (p *Pipeline) through(steps []step, row Event, stream string, seq uint64, out *outputs, keyed bool) {
	res, to, label, err := p.apply(steps, row, len(p.pre))
	if err != nil {
		line, _ := encode(nil, row)
		out.bad = append(out.bad, p.badLine(fmt.Sprintf("%s message %d", stream, seq), stream, seq, label, err, line))
		return
	}
	if res == nil {
		return
	}
	if to == nil {
		to = p.o.Config.To
	}
	for _, o := range to {
		row := res
		if o.Lake != "" {
			var err error
			if row, err = p.lakes[o.Lake].conform(res); err != nil {
				line, _ := encode(nil, res)
				out.bad = append(out.bad, p.badLine(fmt.Sprintf("%s message %d", stream, seq), stream, seq, "to lake "+o.Lake, err, line))
				continue
			}
		}
		if ndjson(o) {
			if err := out.addLine(o, row); err != nil {
				line, _ := encode(nil, res)
				out.bad = append(out.bad, p.badLine(fmt.Sprintf("%s message %d", stream, seq), stream, seq, "output", err, line))
			}
			continue
		}
		out.rows[o] = append(out.rows[o], row)
		out.keyed[o] = keyed
	}
}

// badLine is the bad row of an event of message seq of src that failed at
// step; where names the message for people (e.g. "events message 12").
func (p *Pipeline) badLine(where, src string, seq uint64, step string, err error, payload []byte) badRow {
	badEvents.WithLabelValues(p.o.Name).Inc()
	now := time.Now().UTC()
	payload = bytes.TrimRight(payload, "\n")
	line, _ := json.Marshal(sluice.BadRow{
		FailedAt: now, ReceivedAt: now, Type: BadPipelineFailure, Collector: "pipeline",
		Path:    fmt.Sprintf("pipeline %s %s", p.o.Name, step),
		Message: fmt.Sprintf("pipeline %s, %s, on %s: %v", p.o.Name, step, where, err),
		RawSeq:  seq, Payload: string(payload),
	})
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00", step)
	h.Write(payload)
	var key [12]byte
	copy(key[:], h.Sum(nil))
	return badRow{src: src, seq: seq, key: key, line: append(line, '\n')}
}

// maxBadMessage bounds a message of bad rows; more rows of one input
// message go on in further messages.
const maxBadMessage = 1 << 20

// badMessages are the bad rows as messages: those of one input message
// together (a message or more, in order), named by the pipeline, the input
// message and the keys of its rows. A batch processed again after a crash
// fails on the same events of each message, and the bus drops the copies.
func (p *Pipeline) badMessages(rows []badRow) []bus.Outgoing {
	type origin struct {
		src string
		seq uint64
	}
	var order []origin
	groups := map[origin][]badRow{}
	for _, r := range rows {
		o := origin{r.src, r.seq}
		if _, ok := groups[o]; !ok {
			order = append(order, o)
		}
		groups[o] = append(groups[o], r)
	}
	var msgs []bus.Outgoing
	for _, o := range order {
		h := sha256.New()
		fmt.Fprintf(h, "%s\x00%d\x00", o.src, o.seq)
		for _, r := range groups[o] {
			h.Write(r.key[:])
		}
		id := fmt.Sprintf("pipeline:%s:bad:%x", p.o.Name, h.Sum(nil)[:16])
		var data []byte
		part := 0
		emit := func() {
			msgs = append(msgs, bus.Outgoing{Stream: sluice.StreamBad, Data: data, MsgID: fmt.Sprintf("%s:%d", id, part)})
			data, part = nil, part+1
		}
		for _, r := range groups[o] {
			if len(data) > 0 && len(data)+len(r.line) > maxBadMessage {
				emit()
			}
			data = append(data, r.line...)
		}
		emit()
	}
	return msgs
}

// write stores a batch's outputs, retrying until it works (consumption
// waits meanwhile: back-pressure) or ctx ends.
func (p *Pipeline) write(ctx context.Context, out *outputs) error {
	backoff := 100 * time.Millisecond
	for {
		err := p.writeOnce(ctx, out)
		if err == nil {
			return nil
		}
		if errors.Is(err, errSchemaConflict) {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		p.measureHeld()
		p.log.Error("pipeline output failed; retrying", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

func (p *Pipeline) writeOnce(ctx context.Context, out *outputs) error {
	msgs := slices.Clone(out.msgs)
	msgs = append(msgs, p.badMessages(out.bad)...)
	for o, rows := range out.rows {
		if o.BusStream() == "" {
			continue
		}
		// Window results, a message each, whose id is the output and the
		// row: a result emitted again after a restart is one message, an
		// updated one (allowed lateness) a new one.
		for _, r := range rows {
			data, err := encode(nil, r)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(data)
			msgs = append(msgs, bus.Outgoing{Stream: o.BusStream(), Data: data,
				MsgID: fmt.Sprintf("pipeline:%s:result:%s:%x", p.o.Name, o.BusStream(), sum[:12])})
		}
	}
	// Before the rows that need them: the archiver types rows by them.
	if err := p.saveLakes(ctx); err != nil {
		return err
	}
	if len(msgs) > 0 {
		if err := p.o.Bus.PublishAll(ctx, msgs); err != nil {
			return err
		}
	}
	// What is stored leaves out, so that a retry after a later output
	// failed does not write it again.
	out.msgs, out.bad = nil, nil
	for o := range out.rows {
		if o.BusStream() != "" {
			delete(out.rows, o)
		}
	}
	if err := p.produce(ctx, out); err != nil {
		return err
	}
	for o := range out.rows {
		if o.Kafka != "" {
			delete(out.rows, o)
		}
	}
	for _, o := range slices.SortedFunc(maps.Keys(out.lines), func(a, b config.Output) int {
		return strings.Compare(a.String(), b.String())
	}) {
		if err := p.sinks.write(ctx, o, out.lines[o]); err != nil {
			return err
		}
		eventsOut.WithLabelValues(p.o.Name, o.String()).Add(float64(out.count[o]))
		delete(out.lines, o)
	}
	for _, o := range slices.SortedFunc(maps.Keys(out.rows), compareOutput) {
		rows := out.rows[o]
		if o.Table == "" {
			continue
		}
		var key []string
		if out.keyed[o] {
			key = p.winKey
		}
		if err := p.o.Tables.WriteRows(ctx, o.Table, key, rows); err != nil {
			return fmt.Errorf("table %s: %w", o.Table, err)
		}
		eventsOut.WithLabelValues(p.o.Name, o.String()).Add(float64(len(rows)))
		delete(out.rows, o)
	}
	return nil
}

func (p *Pipeline) load(ctx context.Context) (checkpoint, error) {
	cp := checkpoint{Positions: map[string]uint64{}}
	data, rev, err := p.o.Bus.GetState(ctx, p.stateKey())
	if err != nil {
		return cp, err
	}
	p.rev = rev
	if data != nil {
		if err := json.Unmarshal(data, &cp); err != nil {
			return cp, fmt.Errorf("pipeline %s: checkpoint: %w", p.o.Name, err)
		}
	} else if err := p.inherit(ctx, &cp); err != nil {
		return cp, err
	}
	for _, s := range p.o.Config.From.Streams() {
		if _, ok := cp.Positions[s]; ok || config.IsKafkaURL(s) {
			continue // a Kafka input's positions are its group's offsets
		}
		cp.Positions[s] = 1
		if p.o.Config.Start == "now" {
			info, err := p.o.Bus.Info(ctx, s)
			if err != nil {
				return cp, err
			}
			cp.Positions[s] = info.LastSeq + 1
		}
	}
	return cp, nil
}

// save writes the checkpoint: for each stream the next message to read, or
// the first one an open window depends on; Kafka inputs commit these
// positions as their group's offsets. Saves are at most twice a second
// unless forced (an older checkpoint only means more to read again).
func (p *Pipeline) save(ctx context.Context, next position, force bool) error {
	if !force && time.Since(p.saved) < 500*time.Millisecond {
		return nil
	}
	cp := checkpoint{Positions: maps.Clone(next.streams), Outputs: next.outputs, Saved: time.Now().UTC()}
	files := maps.Clone(next.files)
	if p.win != nil {
		cp.Final = p.win.final
		minSeq := p.win.minSeq()
		for s, q := range minSeq {
			if _, ok := cp.Positions[s]; ok && q < cp.Positions[s] {
				cp.Positions[s] = q
			}
		}
		if !maps.Equal(cp.Positions, next.streams) {
			cp.Read = maps.Clone(next.streams)
		}
		p.starts.rewind(files, minSeq)
	}
	if p.files != nil {
		cp.Files = &tail.State{Files: slices.SortedFunc(maps.Values(files), func(a, b tail.FileState) int {
			return strings.Compare(a.Path+"\x00"+a.Key(), b.Path+"\x00"+b.Key())
		})}
	}
	offsets := map[string]uint64{}
	for s, q := range cp.Positions {
		if _, _, ok := parseKafkaStream(s); ok {
			offsets[s] = q
			delete(cp.Positions, s)
			delete(cp.Read, s)
		}
	}
	data, _ := json.Marshal(cp)
	rev, err := p.o.Bus.PutState(ctx, p.stateKey(), data, p.rev)
	if errors.Is(err, bus.ErrConflict) {
		return fmt.Errorf("pipeline %s: its checkpoint was changed by another process (is the pipeline running twice?): %w", p.o.Name, err)
	}
	if err != nil {
		return err
	}
	p.rev, p.saved, p.savedNext = rev, time.Now(), next.clone()
	if len(p.others) > 0 && p.part == 0 {
		p.dropOthers(ctx)
	}
	// After the checkpoint, whose final time covers the windows these
	// offsets leave behind. A failed commit only means more to read again.
	for _, k := range p.kafka {
		if err := k.commit(ctx, offsets); err != nil {
			p.log.Error("kafka offsets not committed; the records after the last commit will be read again", "err", err)
		}
	}
	return nil
}

// Lag is how many messages of each of a pipeline's bus inputs it has not
// read yet, as its checkpoints say, wherever its workers run: from the
// stream's last message back to the worker furthest behind (each worker
// reads the whole stream and processes its share of it). A worker without
// a checkpoint yet has read nothing (or, with start: now, everything).
// Kafka inputs are not in it: their lag is their consumer group's.
func Lag(ctx context.Context, b *bus.Bus, name string, c config.Pipeline) (map[string]uint64, error) {
	parts := max(c.Workers, 1)
	cps := make([]checkpoint, parts)
	for i := range parts {
		data, _, err := b.GetState(ctx, checkpointKey(name, i, parts))
		if err != nil {
			return nil, fmt.Errorf("pipeline %s: checkpoint: %w", name, err)
		}
		if data != nil {
			if err := json.Unmarshal(data, &cps[i]); err != nil {
				return nil, fmt.Errorf("pipeline %s: checkpoint: %w", name, err)
			}
		}
	}
	lag := map[string]uint64{}
	for _, s := range c.From.Streams() {
		if config.IsKafkaURL(s) {
			continue
		}
		info, err := b.Info(ctx, s)
		if err != nil {
			return nil, fmt.Errorf("pipeline %s: %w", name, err)
		}
		head := info.LastSeq + 1
		lag[s] = 0
		for _, cp := range cps {
			next, has := cp.Read[s]
			if !has {
				next, has = cp.Positions[s]
			}
			if !has {
				next = 1
				if c.Start == "now" {
					next = head
				}
			}
			if next = max(next, info.FirstSeq); next < head {
				lag[s] = max(lag[s], head-next)
			}
		}
	}
	return lag, nil
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

func mapsKeys[V any](m map[int]V) func(func(int) bool) { return maps.Keys(m) }
