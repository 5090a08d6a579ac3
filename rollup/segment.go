package rollup

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/gob"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/DataDog/sketches-go/ddsketch"
	"github.com/DataDog/sketches-go/ddsketch/store"
	"github.com/axiomhq/hyperloglog"
)

func (s *count) encode() []byte { return binary.AppendVarint(nil, s.n) }
func (s *count) decode(b []byte) error {
	n, k := binary.Varint(b)
	if k <= 0 {
		return fmt.Errorf("count: bad encoding")
	}
	s.n = n
	return nil
}

func (s *sum) encode() []byte {
	b := binary.LittleEndian.AppendUint64(nil, math.Float64bits(s.s))
	return binary.AppendVarint(b, s.n)
}
func (s *sum) decode(b []byte) error {
	if len(b) < 9 {
		return fmt.Errorf("sum: bad encoding")
	}
	s.s = math.Float64frombits(binary.LittleEndian.Uint64(b))
	n, k := binary.Varint(b[8:])
	if k <= 0 {
		return fmt.Errorf("sum: bad encoding")
	}
	s.n = n
	return nil
}

func (e *extreme) encode() []byte {
	b := binary.LittleEndian.AppendUint64(nil, math.Float64bits(e.v))
	if e.set {
		return append(b, 1)
	}
	return append(b, 0)
}
func (e *extreme) decode(b []byte) error {
	if len(b) != 9 {
		return fmt.Errorf("min/max: bad encoding")
	}
	e.v, e.set = math.Float64frombits(binary.LittleEndian.Uint64(b)), b[8] == 1
	return nil
}

func (a *avg) encode() []byte        { return a.sum.encode() }
func (a *avg) decode(b []byte) error { return a.sum.decode(b) }
func (d *distinct) encode() []byte   { b, _ := d.sk.MarshalBinary(); return b }
func (d *distinct) decode(b []byte) error {
	d.sk = hyperloglog.New16()
	return d.sk.UnmarshalBinary(b)
}
func (q *quantile) encode() []byte {
	var b []byte
	q.sk.Encode(&b, false)
	return b
}
func (q *quantile) decode(b []byte) error {
	sk, err := ddsketch.DecodeDDSketch(b, store.DefaultProvider, nil)
	if err != nil {
		return err
	}
	q.sk = sk
	return nil
}

type codec interface {
	encode() []byte
	decode([]byte) error
}

// A rollup's directory holds a segment file per interval and version, and
// manifest.json: the segment of each interval and the stream position the
// whole covers (the next message to read). The manifest is written
// atomically after the segments it names, so it is the commit point: after
// a crash the rollup loads the segments it names and reads the stream again
// from its position, and every acknowledged event counts once. A save
// writes only the intervals that changed; a rebuild or a re-roll writes
// its intervals' next version beside the old one, and the manifest's
// switch retires the old.

const (
	segmentFormat  = 2
	manifestFile   = "manifest.json"
	manifestFormat = 2
)

type manifest struct {
	Format     int             `json:"format"`
	Definition string          `json:"definition"`
	Next       uint64          `json:"next"`
	Saves      uint64          `json:"saves"`
	Intervals  []manifestEntry `json:"intervals"`
}

type manifestEntry struct {
	Start   time.Time `json:"start"`
	Length  string    `json:"length"`
	Grain   string    `json:"grain"`
	Version int       `json:"version"`
	File    string    `json:"file"`
	Rows    int       `json:"rows"`
}

type segmentFile struct {
	Format        int
	Start         int64
	Length, Grain time.Duration
	Version       int
	Rows          []snapRow
}

type snapRow struct {
	Time   int64 // Unix ns
	Dims   []string
	States [][]byte
}

// definition names the table's shape: a segment of another shape cannot
// be read into it.
func (t *Table) definition() string {
	var b strings.Builder
	fmt.Fprintf(&b, "grain=%s dims=%s metrics=", t.Granularity, strings.Join(t.Dimensions, ","))
	for _, m := range t.Metrics {
		fmt.Fprintf(&b, "%s:%s(%s,%g);", m.Name, m.Func, m.Field, m.Q)
	}
	return b.String()
}

// save writes the intervals changed since the last save, then the
// manifest with next, then removes the segment files it no longer names.
// Saves must not run concurrently (the runner holds its ingest lock).
func (t *Table) save(dir string, next uint64) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	type pending struct {
		iv   *interval
		gen  uint64
		file string
		data []byte
	}
	var todo []pending
	m := manifest{Format: manifestFormat, Definition: t.definition(), Next: next}
	// The write lock: encoding a quantile sketch compacts it.
	t.mu.Lock()
	for _, iv := range t.sortedIntervals(0, 1<<63-1) {
		e := manifestEntry{Start: time.Unix(0, iv.start).UTC(), Length: iv.length.String(), Grain: iv.grain.String(), Version: iv.version, File: iv.file}
		seg := segmentFile{Format: segmentFormat, Start: iv.start, Length: iv.length, Grain: iv.grain, Version: iv.version}
		dirty := iv.file == "" || iv.gen != iv.saved
		for b, rows := range iv.buckets {
			e.Rows += len(rows)
			if !dirty {
				continue
			}
			for _, r := range rows {
				sr := snapRow{Time: b, Dims: r.Dims}
				for _, s := range r.states {
					sr.States = append(sr.States, s.(codec).encode())
				}
				seg.Rows = append(seg.Rows, sr)
			}
		}
		if dirty {
			var buf bytes.Buffer
			if err := gob.NewEncoder(&buf).Encode(seg); err != nil {
				t.mu.Unlock()
				return err
			}
			t.saves++
			e.File = fmt.Sprintf("%s-v%d-%d.seg", e.Start.Format("20060102T15"), iv.version, t.saves)
			todo = append(todo, pending{iv, iv.gen, e.File, buf.Bytes()})
		}
		m.Intervals = append(m.Intervals, e)
	}
	t.mu.Unlock()
	m.Saves = t.saves
	for _, p := range todo {
		if err := writeFileSync(filepath.Join(dir, p.file), p.data); err != nil {
			return err
		}
	}
	data, err := json.MarshalIndent(m, "", " ")
	if err != nil {
		return err
	}
	if err := writeFileSync(filepath.Join(dir, manifestFile+".tmp"), data); err != nil {
		return err
	}
	if err := os.Rename(filepath.Join(dir, manifestFile+".tmp"), filepath.Join(dir, manifestFile)); err != nil {
		return err
	}
	syncDir(dir)
	t.mu.Lock()
	for _, p := range todo {
		p.iv.file, p.iv.saved = p.file, p.gen
	}
	t.mu.Unlock()
	// The files the manifest no longer names: earlier versions, expired
	// intervals, and what a crash left half written.
	named := map[string]bool{}
	for _, e := range m.Intervals {
		named[e.File] = true
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, de := range entries {
		if strings.HasSuffix(de.Name(), ".seg") && !named[de.Name()] {
			os.Remove(filepath.Join(dir, de.Name()))
		}
	}
	return nil
}

// load reads the segments the manifest in dir names into the (empty)
// table; it returns the position to read from (1 when there is none). A
// snapshot of the first format (legacy, a file of its own) is read when
// there is no manifest.
func (t *Table) load(dir, legacy string) (uint64, error) {
	b, err := os.ReadFile(filepath.Join(dir, manifestFile))
	if os.IsNotExist(err) {
		return t.loadLegacy(legacy)
	}
	if err != nil {
		return 0, err
	}
	var m manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return 0, fmt.Errorf("rollup manifest %s: %w", dir, err)
	}
	if m.Format != manifestFormat {
		return 0, fmt.Errorf("rollup manifest %s has format %d, not %d", dir, m.Format, manifestFormat)
	}
	if m.Definition != t.definition() {
		return 0, fmt.Errorf("rollup segments in %s are of another definition (granularity, dimensions or metrics changed)", dir)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.saves = m.Saves
	for _, e := range m.Intervals {
		iv, err := t.readSegment(filepath.Join(dir, e.File))
		if err != nil {
			return 0, err
		}
		iv.file, iv.gen, iv.saved = e.File, 1, 1
		t.intervals[iv.start] = iv
	}
	return m.Next, nil
}

func (t *Table) readSegment(path string) (*interval, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("rollup segment: %w", err)
	}
	defer f.Close()
	var seg segmentFile
	if err := gob.NewDecoder(bufio.NewReader(f)).Decode(&seg); err != nil {
		return nil, fmt.Errorf("rollup segment %s: %w", path, err)
	}
	if seg.Format != segmentFormat {
		return nil, fmt.Errorf("rollup segment %s has format %d, not %d", path, seg.Format, segmentFormat)
	}
	iv := &interval{start: seg.Start, length: seg.Length, grain: seg.Grain, version: seg.Version, buckets: map[int64]map[string]*Row{}}
	for _, sr := range seg.Rows {
		r, err := t.decodeRow(sr)
		if err != nil {
			return nil, fmt.Errorf("rollup segment %s: %w", path, err)
		}
		rows := iv.buckets[sr.Time]
		if rows == nil {
			rows = map[string]*Row{}
			iv.buckets[sr.Time] = rows
		}
		rows[groupKey(sr.Dims)] = r
	}
	return iv, nil
}

func (t *Table) decodeRow(sr snapRow) (*Row, error) {
	if len(sr.States) != len(t.Metrics) || len(sr.Dims) != len(t.Dimensions) {
		return nil, fmt.Errorf("a row of another definition (dimensions or metrics changed)")
	}
	r := &Row{Time: time.Unix(0, sr.Time).UTC(), Dims: sr.Dims, states: make([]state, len(t.Metrics))}
	for i, m := range t.Metrics {
		s := newState(m)
		if err := s.(codec).decode(sr.States[i]); err != nil {
			return nil, fmt.Errorf("metric %s: %w", m.Name, err)
		}
		r.states[i] = s
	}
	return r, nil
}

// legacySnapshot is the first format: the whole table in one file.
type legacySnapshot struct {
	Format int
	Next   uint64
	Rows   []snapRow
}

func (t *Table) loadLegacy(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if path == "" || os.IsNotExist(err) {
		return 1, nil
	}
	if err != nil {
		return 0, err
	}
	var snap legacySnapshot
	if err := gob.NewDecoder(bytes.NewReader(b)).Decode(&snap); err != nil {
		return 0, fmt.Errorf("rollup snapshot %s: %w", path, err)
	}
	if snap.Format != 1 {
		return 0, fmt.Errorf("rollup snapshot %s has format %d, not 1", path, snap.Format)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, sr := range snap.Rows {
		r, err := t.decodeRow(sr)
		if err != nil {
			return 0, fmt.Errorf("rollup snapshot %s: %w", path, err)
		}
		iv := t.intervalAt(sr.Time, true)
		iv.gen++
		rows := iv.buckets[sr.Time]
		if rows == nil {
			rows = map[string]*Row{}
			iv.buckets[sr.Time] = rows
		}
		rows[groupKey(sr.Dims)] = r
	}
	return snap.Next, nil
}

// writeFileSync writes a file and syncs it.
func writeFileSync(path string, data []byte) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}
