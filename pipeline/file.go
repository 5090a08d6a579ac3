package pipeline

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/sluice-data/sluice/bus"
	"github.com/sluice-data/sluice/collect/tail"
	"github.com/sluice-data/sluice/config"
)

// Files as a pipeline's input (from: {file: {paths: […], parse: json}}).
//
// The files are found and read by a tail.Follower, the one file sources use:
// globs looked at again every poll, rotation by rename followed to the old
// file's end, copy-truncate started over, each file's identity (device,
// inode, a fingerprint of its first bytes) checked after a restart. The
// chunks it reads (up to fileWindow bytes of whole records of one file) are
// the input's messages: a chunk is message <offset of its first byte> of the
// input file:<dev>.<ino>.<epoch>, so windows, bad rows and output ids treat
// them as they treat a stream's messages.
//
// Position. The state of each file after the last chunk whose outputs are
// stored is part of the pipeline's checkpoint (Files), saved with the stream
// positions in one write: after a crash the pipeline reads each file again
// from there, so nothing is lost, and nothing before it is read again. With
// a window, the state saved for a file is the start of the first chunk an
// open window depends on, as for a stream.
//
// Memory. A file is its own buffer: the input reads ahead at most two
// chunks, or with lanes that process them in parallel two per lane and one
// more (or half the pipeline's memory, if that is less), however large the
// files, and waits while the pipeline works.

// fileWindow is the most bytes of a file read at once: one chunk.
const fileWindow = 1 << 20

// fileInput reads a pipeline's files.
type fileInput struct {
	fw    *tail.Follower
	parse string
	poll  time.Duration
	// sem bounds the bytes of chunks read and not yet processed.
	sem  chan struct{}
	unit int
	// free are the bodies of processed chunks, for the next ones.
	free  chan []byte
	mu    sync.Mutex
	paths map[string]string // file key -> path, for bad rows
}

// fileChunk is a chunk of a file, as an input message.
type fileChunk struct {
	start, state tail.FileState
	done         bool
}

// fileStream is the input name of a chunk of the file st.
func fileStream(st tail.FileState) string { return "file:" + st.Key() }

// isFileStream tells whether an input name is a file's (fileStream).
func isFileStream(s string) bool { return strings.HasPrefix(s, "file:") }

// fileID is a file's identity in a checkpoint: its state whatever its
// epoch (a truncated file starts a new epoch, and replaces the old state).
func fileID(st tail.FileState) string { return fmt.Sprintf("%d.%d", st.Dev, st.Ino) }

func newFileInput(name string, in *config.FileInput, start string, cp checkpoint, o Options, budget int64, lanes int) (*fileInput, error) {
	fw, err := tail.NewFollower(tail.FollowOptions{
		Paths: in.Paths, Multiline: in.Multiline, Window: fileWindow, MaxRecord: fileWindow / 2,
		RotateWait: o.FileRotateWait, FromEnd: start == "now" && cp.Files == nil,
		Where: fmt.Sprintf("pipeline %s: file input", name), Logger: o.Logger.With("pipeline", name),
	})
	if err != nil {
		return nil, err
	}
	if cp.Files != nil {
		fw.Restore(*cp.Files)
	}
	poll := o.FilePoll
	if poll <= 0 {
		poll = 250 * time.Millisecond
	}
	parse := in.Parse
	if parse == "" {
		parse = config.FileParseJSON
	}
	// Read-ahead in units of 64 KiB: two chunks, or with lanes that process
	// chunks in parallel, two per lane and one more (a batch's chunks are
	// held until its outputs are written: meanwhile the next batch's are
	// read), or half the budget if less.
	const unit = 64 << 10
	ahead := min(int64(max(2, 2*lanes+1))*fileWindow, budget/2)
	return &fileInput{fw: fw, parse: parse, poll: poll, unit: unit, sem: make(chan struct{}, max(1, ahead/unit)),
		free: make(chan []byte, 4), paths: map[string]string{}}, nil
}

// read hands the files' chunks to in until ctx ends.
func (f *fileInput) read(ctx context.Context, in chan<- item) {
	defer f.fw.Close()
	tick := time.NewTicker(f.poll)
	defer tick.Stop()
	for {
		now := time.Now()
		f.fw.Scan(now)
		for {
			var body []byte
			select {
			case body = <-f.free:
			default:
				body = make([]byte, 0, fileWindow+fileWindow/16)
			}
			c, ok := f.fw.Next(body, now)
			if !ok {
				f.recycle(body)
				break
			}
			units := max(1, len(c.Records)/f.unit)
			if !f.acquire(ctx, units) {
				return
			}
			stream := fileStream(c.Start)
			f.mu.Lock()
			f.paths[stream] = c.State.Path
			f.mu.Unlock()
			it := item{stream: stream, m: bus.Msg{Seq: uint64(c.Start.Offset), Data: c.Records},
				file: &fileChunk{start: c.Start, state: c.State, done: c.Done},
				release: func() {
					f.releaseUnits(units)
					f.recycle(c.Records)
				}}
			select {
			case in <- it:
			case <-ctx.Done():
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// acquire takes n units of read-ahead, waiting for processed chunks to
// give theirs back; it returns false when ctx ended.
func (f *fileInput) acquire(ctx context.Context, n int) bool {
	n = min(n, cap(f.sem)) // a chunk larger than the whole read-ahead still goes, alone
	for range n {
		select {
		case f.sem <- struct{}{}:
		case <-ctx.Done():
			return false
		}
	}
	return true
}

func (f *fileInput) releaseUnits(n int) {
	for range min(n, cap(f.sem)) {
		<-f.sem
	}
}

// recycle keeps a processed chunk's body for a next chunk.
func (f *fileInput) recycle(body []byte) {
	if cap(body) > 2*fileWindow {
		return // grown for tiny records; let it go
	}
	select {
	case f.free <- body[:0]:
	default:
	}
}

// where names a chunk in bad rows: its file and bytes.
func (f *fileInput) where(it item) string {
	f.mu.Lock()
	path := f.paths[it.stream]
	f.mu.Unlock()
	return fmt.Sprintf("file %s bytes %d-%d", path, it.file.start.Offset, it.file.state.Offset)
}

// fileStarts remembers, while a window may depend on them, the states at
// which chunks started: a checkpoint that must go back to a chunk saves its
// start (byte offset and the skip state with it).
type fileStarts map[string]map[uint64]tail.FileState // stream -> offset -> state

func (fs fileStarts) add(it item) {
	m := fs[it.stream]
	if m == nil {
		m = map[uint64]tail.FileState{}
		fs[it.stream] = m
	}
	m[it.m.Seq] = it.file.start
}

// rewind sets the files of pos back to the chunks that minSeq (of the open
// windows) names, and forgets the chunks before them.
func (fs fileStarts) rewind(pos map[string]tail.FileState, minSeq map[string]uint64) {
	for stream, starts := range fs {
		q, ok := minSeq[stream]
		if !ok {
			delete(fs, stream)
			continue
		}
		for off := range starts {
			if off < q {
				delete(starts, off)
			}
		}
		st, ok := starts[q]
		if !ok {
			continue
		}
		cur, ok := pos[fileID(st)]
		if ok && cur.Epoch != st.Epoch {
			continue // the file started over (truncated): what the window read is gone
		}
		if !ok || st.Offset < cur.Offset {
			pos[fileID(st)] = st
		}
	}
}
