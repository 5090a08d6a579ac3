// Package tail follows log files and stores their records on the `raw`
// stream, for enrich to parse (collectors only frame; see sluice.Payload and
// sluice.ContentTypeRecords). Finding and reading the files is the
// Follower's (follow.go), which a pipeline's file input uses too, with its
// own checkpoint instead of the bus's messages.
//
// Promises:
//   - Exactly once, across crashes at any point: every record of a followed
//     file is stored once, none is skipped. The bus is the commit point: each
//     message carries the complete tailer state after it (header
//     "Checkpoint": for every file its identity and the offset just past its
//     last stored record), and a restarting tailer resumes from the state in
//     the last message it stored. A local copy of that state
//     (<StateDir>/<Source>.json, replaced atomically after each publish, and
//     when a drained file is dropped) is
//     used only when the stream no longer holds such a message (retention).
//   - Files are found by glob patterns, re-evaluated every poll: new files are
//     read from their beginning.
//   - Rotation by rename (logrotate `create`, nginx `mv` + reopen): the old
//     file is read through its open descriptor until it has been quiet for
//     RotateWait, then its last line is stored even without a final newline,
//     and it is dropped. The file now at the path is new and read from 0.
//     A file rotated while sluice was down is looked for by identity in its
//     directory and drained from the saved offset.
//   - Copy-truncate: a file that shrinks below the stored offset (or whose
//     first bytes change) is read again from 0. Lines written between the
//     copy and the truncation are lost; that is inherent to copy-truncate.
//   - A last line without "\n" is not stored while its file may still grow
//     (it may be half written); it is stored when the file is rotated away or
//     removed. Lines longer than MaxRecord are cut and flagged truncated.
//   - Records of one file are stored in file order; there is no order across
//     files.
package tail

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/bus"
)

// Bus is what the tailer needs from the bus (*bus.Bus implements it).
type Bus interface {
	PublishTo(ctx context.Context, stream, sub string, data []byte, msgID string) (uint64, error)
	LastMsg(ctx context.Context, stream, sub string) (bus.Msg, bool, error)
	MaxPayload() int64
}

// Options configure a Tailer.
type Options struct {
	// Source is the config source name, e.g. "nginx": letters, digits, '_'
	// and '-' only (it names a bus subject and the state file).
	Source string
	// Paths are glob patterns (filepath.Glob syntax).
	Paths []string
	// Parse, Pattern and Stream tell enrich how to parse the records and
	// where to send them; the tailer only records them on each payload.
	Parse   string
	Pattern string
	Stream  string // default "logs"
	// Multiline, when set, is a regular expression: a line matching it
	// starts a new record, other lines are appended (with "\n") to the
	// record before. A record is complete when the next one starts, when its
	// file has been quiet for FlushAfter, or when its file is drained.
	Multiline string
	// StateDir holds the local copy of the state, <StateDir>/<Source>.json.
	StateDir string
	Bus      Bus
	// PollInterval is how often files are checked; default 250ms.
	PollInterval time.Duration
	// MaxRecord is the longest record stored whole; longer ones are cut and
	// flagged truncated. Default 1 MiB; at most an eighth of the bus's
	// largest message.
	MaxRecord int
	// RotateWait is how long a file rotated away (or removed) is still read
	// after it last grew, for writers that reopen late; default 5s.
	RotateWait time.Duration
	// FlushAfter is how long a multi-line record waits for more lines once
	// its file is quiet; default 1s.
	FlushAfter time.Duration
	Logger     *slog.Logger
}

// Payload headers the tailer sets (sluice.go documents them); enrich reads
// all but the checkpoint.
const (
	HeaderSource     = sluice.HeaderSource
	HeaderParse      = sluice.HeaderParse
	HeaderPattern    = sluice.HeaderPattern
	HeaderStream     = sluice.HeaderStream
	HeaderCheckpoint = sluice.HeaderCheckpoint // on the last payload of each message
)

// Collector is the sluice.Payload Collector of tailed records.
const Collector = "file"

// maxChunk bounds one message, so a backlog goes out in big fsync-sized
// pieces without holding much memory.
const maxChunk = 4 << 20

// fpSize is how much of a file's beginning its fingerprint covers.
const fpSize = 1024

var sourceName = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// Tailer follows the files of one source.
type Tailer struct {
	o       Options
	log     *slog.Logger
	sub     string // bus sub-subject of this source's messages
	fw      *Follower
	chunk   int // largest message
	ckptLen int // size of the last checkpoint, to leave room for the next
}

// New checks o and returns a Tailer; Run starts it.
func New(o Options) (*Tailer, error) {
	if !sourceName.MatchString(o.Source) {
		return nil, fmt.Errorf("file source %q: the name may hold only letters, digits, '_' and '-'", o.Source)
	}
	where := fmt.Sprintf("file source %s", o.Source)
	if o.Bus == nil {
		return nil, fmt.Errorf("%s: no bus", where)
	}
	if o.StateDir == "" {
		return nil, fmt.Errorf("%s: no state directory", where)
	}
	if o.Stream == "" {
		o.Stream = sluice.StreamLogs
	}
	if o.PollInterval <= 0 {
		o.PollInterval = 250 * time.Millisecond
	}
	if o.MaxRecord <= 0 {
		o.MaxRecord = 1 << 20
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	t := &Tailer{o: o, log: o.Logger.With("source", o.Source), sub: "file." + o.Source}
	t.chunk = int(min(maxChunk, o.Bus.MaxPayload()/2))
	if o.MaxRecord > t.chunk/4 {
		return nil, fmt.Errorf("%s: max record %d bytes is too big for bus messages of %d bytes (at most %d)",
			where, o.MaxRecord, o.Bus.MaxPayload(), t.chunk/4)
	}
	var err error
	t.fw, err = NewFollower(FollowOptions{
		Paths: o.Paths, Multiline: o.Multiline, MaxRecord: o.MaxRecord, Window: t.chunk,
		RotateWait: o.RotateWait, FlushAfter: o.FlushAfter, Where: where, Logger: t.log,
	})
	if err != nil {
		return nil, err
	}
	return t, nil
}

// Run follows the files until ctx is done. When it returns, everything read
// has been stored or will be read again by the next Run on the same bus.
func (t *Tailer) Run(ctx context.Context) error {
	defer t.fw.Close()
	if err := t.restore(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	tick := time.NewTicker(t.o.PollInterval)
	defer tick.Stop()
	for {
		t.fw.Scan(time.Now())
		for more := true; more; {
			var err error
			if more, err = t.publishOnce(ctx); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

func (t *Tailer) statePath() string { return filepath.Join(t.o.StateDir, t.o.Source+".json") }

// loadState returns the state of the last stored message, else the local
// copy, else an empty state.
func (t *Tailer) loadState(ctx context.Context) (State, error) {
	var st State
	m, ok, err := t.o.Bus.LastMsg(ctx, sluice.StreamRaw, t.sub)
	if err != nil {
		return st, fmt.Errorf("file source %s: read the last checkpoint: %w", t.o.Source, err)
	}
	if ok {
		payloads, err := sluice.DecodeFrame(m.Data)
		if err != nil {
			return st, fmt.Errorf("file source %s: last message (raw seq %d): %w", t.o.Source, m.Seq, err)
		}
		for i := len(payloads) - 1; i >= 0; i-- {
			if c, ok := payloads[i].Headers[HeaderCheckpoint]; ok {
				if err := json.Unmarshal([]byte(c), &st); err != nil {
					return st, fmt.Errorf("file source %s: checkpoint in raw seq %d: %w", t.o.Source, m.Seq, err)
				}
				t.log.Info("tail: resuming from the bus", "raw_seq", m.Seq, "files", len(st.Files))
				return st, nil
			}
		}
		return st, fmt.Errorf("file source %s: last message (raw seq %d) has no checkpoint", t.o.Source, m.Seq)
	}
	data, err := os.ReadFile(t.statePath())
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("file source %s: %w", t.o.Source, err)
	}
	if err := json.Unmarshal(data, &st); err != nil {
		return st, fmt.Errorf("file source %s: state file %s: %w (remove it to read every file from the beginning)", t.o.Source, t.statePath(), err)
	}
	t.log.Info("tail: resuming from the state file (the bus holds no checkpoint)", "path", t.statePath(), "files", len(st.Files))
	return st, nil
}

// restore reopens the files of the saved state, looking for rotated ones in
// their directory.
func (t *Tailer) restore(ctx context.Context) error {
	st, err := t.loadState(ctx)
	if err != nil {
		return err
	}
	t.fw.Restore(st)
	t.ckptLen = 256 * len(st.Files)
	return nil
}

// publishOnce stores the records that are ready, from as many files as fit
// in one message. more says some file has more to read at once.
func (t *Tailer) publishOnce(ctx context.Context) (more bool, err error) {
	now := time.Now()
	room := t.chunk - 2*t.ckptLen - 8192
	type change struct {
		f    *file
		st   FileState
		done bool
	}
	var (
		changes  []change
		payloads []sluice.Payload
		msgID    string
	)
	fw := t.fw
	n := len(fw.files)
	for k := range n {
		f := fw.files[(fw.next+k)%n]
		window := room * 9 / 10 // records take a little more room than lines
		if window <= fw.cut.max {
			more = true
			break
		}
		body, st, full, done, err := fw.read(f, nil, window, now)
		if err != nil {
			t.log.Warn("tail: read failed; will retry", "path", f.st.Path, "err", err)
			continue
		}
		more = more || full
		if st != f.st || done {
			changes = append(changes, change{f, st, done})
		}
		if len(body) == 0 {
			continue
		}
		if msgID == "" {
			msgID = fmt.Sprintf("tail-%s-%d.%d.%s-%d", t.o.Source, f.st.Dev, f.st.Ino, f.st.Epoch, f.st.Offset)
		}
		payloads = append(payloads, sluice.Payload{
			ReceivedAt: now.UTC(), Collector: Collector, Path: f.st.Path,
			ContentType: sluice.ContentTypeRecords, Headers: t.headers(), Body: body,
		})
		room -= len(body) + 512
	}
	if n > 0 {
		fw.next = (fw.next + 1) % n
	}
	apply := func() {
		for _, c := range changes {
			c.f.st = c.st
			if c.done {
				fw.drop(c.f)
			}
		}
	}
	if len(payloads) == 0 {
		// Only skipped bytes or drained files: nothing to store on the bus
		// (the next message's checkpoint carries the change), but the state
		// file may as well be current.
		if len(changes) > 0 {
			apply()
			t.saveState()
		}
		return more, nil
	}
	ckpt, err := t.checkpoint(func(f *file) (FileState, bool) {
		for _, c := range changes {
			if c.f == f {
				return c.st, !c.done
			}
		}
		return f.st, true
	})
	if err != nil {
		return false, err
	}
	payloads[len(payloads)-1].Headers[HeaderCheckpoint] = string(ckpt)
	frame, err := sluice.EncodeFrame(payloads)
	if err != nil {
		return false, err
	}
	if err := t.publish(ctx, frame, msgID); err != nil {
		return false, err
	}
	apply()
	t.ckptLen = len(ckpt)
	t.writeState(ckpt)
	return more, nil
}

// saveState writes the current state to the state file.
func (t *Tailer) saveState() {
	ckpt, err := t.checkpoint(func(f *file) (FileState, bool) { return f.st, true })
	if err == nil {
		t.writeState(ckpt)
	}
}

func (t *Tailer) writeState(ckpt []byte) {
	if err := writeFileAtomic(t.statePath(), ckpt); err != nil {
		t.log.Warn("tail: could not write the state file (the bus holds the checkpoint)", "path", t.statePath(), "err", err)
	}
}

// publish stores one message, retrying the same bytes under the same id
// until it is stored or ctx is done.
func (t *Tailer) publish(ctx context.Context, frame []byte, msgID string) error {
	backoff := 100 * time.Millisecond
	for {
		_, err := t.o.Bus.PublishTo(ctx, sluice.StreamRaw, t.sub, frame, msgID)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		t.log.Warn("tail: publish failed; retrying", "msg_id", msgID, "err", err)
		timer := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			timer.Stop()
			return ctx.Err()
		case <-timer.C:
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

func (t *Tailer) headers() map[string]string {
	h := map[string]string{HeaderSource: t.o.Source, HeaderParse: t.o.Parse, HeaderStream: t.o.Stream}
	if t.o.Pattern != "" {
		h[HeaderPattern] = t.o.Pattern
	}
	return h
}

// checkpoint encodes the state of every file as it will be once the message
// is stored; stateOf gives a file's state and whether it stays.
func (t *Tailer) checkpoint(stateOf func(*file) (FileState, bool)) ([]byte, error) {
	st := State{Files: make([]FileState, 0, len(t.fw.files))}
	for _, f := range t.fw.files {
		if fs, keep := stateOf(f); keep {
			st.Files = append(st.Files, fs)
		}
	}
	return json.Marshal(st)
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// fingerprint hashes the first n bytes of f.
func fingerprint(f *os.File, n int64) (string, error) {
	buf := make([]byte, n)
	if _, err := f.ReadAt(buf, 0); err != nil {
		return "", err
	}
	h := fnv.New64a()
	h.Write(buf)
	return hex.EncodeToString(h.Sum(nil)), nil
}

func newEpoch() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// writeFileAtomic replaces path with data: a crash leaves the old or the new
// contents, never a mix.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
