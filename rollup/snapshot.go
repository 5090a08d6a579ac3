package rollup

import (
	"bytes"
	"encoding/binary"
	"encoding/gob"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/DataDog/sketches-go/ddsketch"
	"github.com/DataDog/sketches-go/ddsketch/store"
	"github.com/axiomhq/hyperloglog"
)

// A snapshot is a rollup's whole table with the stream position it covers
// (the next message to read), in one file written atomically: after a
// crash the rollup loads it and reads the stream again from that position,
// so every acknowledged event counts once.

type snapshot struct {
	Format int
	Next   uint64 // the first message not counted
	Rows   []snapRow
}

type snapRow struct {
	Time   int64 // Unix ns
	Dims   []string
	States [][]byte
}

const snapshotFormat = 1

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

// save writes the table and next to path atomically.
func (t *Table) save(path string, next uint64) error {
	t.mu.RLock()
	snap := snapshot{Format: snapshotFormat, Next: next}
	for b, rows := range t.buckets {
		for _, r := range rows {
			sr := snapRow{Time: b, Dims: r.Dims}
			for _, s := range r.states {
				sr.States = append(sr.States, s.(codec).encode())
			}
			snap.Rows = append(snap.Rows, sr)
		}
	}
	t.mu.RUnlock()
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(snap); err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := f.Write(buf.Bytes()); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// load reads a snapshot into the (empty) table; it returns the position
// to read from (1 when there is none).
func (t *Table) load(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return 1, nil
	}
	if err != nil {
		return 0, err
	}
	var snap snapshot
	if err := gob.NewDecoder(bytes.NewReader(b)).Decode(&snap); err != nil {
		return 0, fmt.Errorf("rollup snapshot %s: %w", path, err)
	}
	if snap.Format != snapshotFormat {
		return 0, fmt.Errorf("rollup snapshot %s has format %d, not %d", path, snap.Format, snapshotFormat)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, sr := range snap.Rows {
		if len(sr.States) != len(t.Metrics) || len(sr.Dims) != len(t.Dimensions) {
			return 0, fmt.Errorf("rollup snapshot %s is of another definition (dimensions or metrics changed): delete it to count from the stream's start", path)
		}
		r := &Row{Time: time.Unix(0, sr.Time).UTC(), Dims: sr.Dims, states: make([]state, len(t.Metrics))}
		for i, m := range t.Metrics {
			s := newState(m)
			if err := s.(codec).decode(sr.States[i]); err != nil {
				return 0, fmt.Errorf("rollup snapshot %s: metric %s: %w", path, m.Name, err)
			}
			r.states[i] = s
		}
		rows := t.buckets[sr.Time]
		if rows == nil {
			rows = map[string]*Row{}
			t.buckets[sr.Time] = rows
		}
		rows[groupKey(sr.Dims)] = r
	}
	return snap.Next, nil
}

// expire drops the buckets that start before cutoff.
func (t *Table) expire(cutoff time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for b := range t.buckets {
		if b < cutoff.UnixNano() {
			delete(t.buckets, b)
		}
	}
}
