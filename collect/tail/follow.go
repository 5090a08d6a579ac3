package tail

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"time"
)

// Follower finds the files that glob patterns match and reads their
// records, each file in order, through rotation and truncation (the
// package comment says how). It keeps nothing on disk: its user stores
// State with what it stored (the Tailer in each bus message, a pipeline in
// its checkpoint) and gives it back to Restore after a restart.
type Follower struct {
	o     FollowOptions
	log   *slog.Logger
	cut   cutter
	buf   []byte
	files []*file
	next  int // round-robin start, so one busy file can't starve the others
}

// FollowOptions configure a Follower.
type FollowOptions struct {
	// Paths are glob patterns (filepath.Glob syntax).
	Paths []string
	// Multiline, when set, is a regular expression: a line matching it
	// starts a new record, other lines are appended (with "\n") to the
	// record before. A record is complete when the next one starts, when its
	// file has been quiet for FlushAfter, or when its file is drained.
	Multiline string
	// MaxRecord is the longest record read whole; longer ones are cut and
	// flagged truncated. Default 1 MiB.
	MaxRecord int
	// Window is the most bytes of a file read at once; default 4 MiB. It
	// must be more than MaxRecord.
	Window int
	// RotateWait is how long a file rotated away (or removed) is still read
	// after it last grew, for writers that reopen late; default 5s.
	RotateWait time.Duration
	// FlushAfter is how long a multi-line record waits for more lines once
	// its file is quiet; default 1s.
	FlushAfter time.Duration
	// FromEnd starts the files found by the first Scan at their end (after
	// their last complete line) instead of their beginning; files found
	// later are read from their beginning. For a user without a saved
	// state that wants only what is written from now on.
	FromEnd bool
	// Where names the follower in errors, e.g. "file source nginx".
	Where  string
	Logger *slog.Logger
}

// State is how far every followed file has been read (stored, when it
// comes from a checkpoint).
type State struct {
	Files []FileState `json:"files"`
}

// FileState is one followed file.
type FileState struct {
	Path string `json:"path"` // where it was followed (rotated files keep their old path)
	Dev  uint64 `json:"dev"`
	Ino  uint64 `json:"ino"`
	// Epoch is chosen when the file is first followed, and again when it
	// starts over (truncated); it keeps message ids unique when an inode is
	// reused or a file is truncated.
	Epoch string `json:"epoch"`
	// FP is a hash of the first FPLen bytes (up to 1 KiB): an inode found
	// again after a restart is the same file only if they still match.
	FP     string `json:"fp,omitempty"`
	FPLen  int64  `json:"fp_len,omitempty"`
	Offset int64  `json:"offset"` // just past the last record read
	Skip   int    `json:"skip,omitempty"`
}

func (s *FileState) id() fileID { return fileID{s.Dev, s.Ino} }

// Key names the file and its epoch: two states with one Key are positions
// in the same contents.
func (s *FileState) Key() string { return fmt.Sprintf("%d.%d.%s", s.Dev, s.Ino, s.Epoch) }

// file is a followed file, held open so that a rotated file can be read to
// its end (and its inode can't be reused meanwhile).
type file struct {
	st        FileState // as of the last record read (Tailer: stored)
	f         *os.File
	size      int64
	grewAt    time.Time
	rotatedAt time.Time // when it left the globs; zero while followed
	told      bool      // Next has returned a chunk of it
}

// NewFollower checks o and returns a Follower; Restore, then Scan and
// Next, read the files.
func NewFollower(o FollowOptions) (*Follower, error) {
	if len(o.Paths) == 0 {
		return nil, fmt.Errorf("%s: no paths to follow", o.Where)
	}
	for _, p := range o.Paths {
		if _, err := filepath.Match(p, ""); err != nil {
			return nil, fmt.Errorf("%s: path pattern %q: %w", o.Where, p, err)
		}
	}
	if o.MaxRecord <= 0 {
		o.MaxRecord = 1 << 20
	}
	if o.Window <= 0 {
		o.Window = maxChunk
	}
	if o.MaxRecord >= o.Window {
		return nil, fmt.Errorf("%s: max record %d bytes is not less than the read window of %d bytes", o.Where, o.MaxRecord, o.Window)
	}
	if o.RotateWait <= 0 {
		o.RotateWait = 5 * time.Second
	}
	if o.FlushAfter <= 0 {
		o.FlushAfter = time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	fw := &Follower{o: o, log: o.Logger}
	fw.cut.max = o.MaxRecord
	if o.Multiline != "" {
		re, err := regexp.Compile(o.Multiline)
		if err != nil {
			return nil, fmt.Errorf("%s: multiline pattern: %w", o.Where, err)
		}
		fw.cut.multi = re
	}
	fw.buf = make([]byte, o.Window)
	return fw, nil
}

// Restore reopens the files of a saved state, looking for rotated ones in
// their directory. A file that is gone is logged and left out.
func (fw *Follower) Restore(st State) {
	fw.Close()
	now := time.Now()
	for _, fs := range st.Files {
		f, err := reopen(fs.Path, fs)
		if err != nil {
			f, err = findMoved(fs)
			if err != nil {
				fw.log.Warn("tail: a followed file is gone; what it held past the saved offset is lost",
					"path", fs.Path, "offset", fs.Offset, "err", err)
				continue
			}
			f.rotatedAt = now
			fw.log.Info("tail: draining a file rotated while stopped", "path", fs.Path, "now_at", f.f.Name(), "offset", fs.Offset)
		}
		f.told = true
		fw.files = append(fw.files, f)
	}
}

// State is the state of every followed file as read so far.
func (fw *Follower) State() State {
	st := State{Files: make([]FileState, 0, len(fw.files))}
	for _, f := range fw.files {
		st.Files = append(st.Files, f.st)
	}
	return st
}

// Close closes the files.
func (fw *Follower) Close() {
	for _, f := range fw.files {
		f.f.Close()
	}
	fw.files = nil
}

// reopen opens path if it still holds the file fs describes.
func reopen(path string, fs FileState) (*file, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	fi, err := fh.Stat()
	if err == nil {
		err = sameFile(fh, fi, fs)
	}
	if err != nil {
		fh.Close()
		return nil, err
	}
	return &file{st: fs, f: fh, size: fi.Size(), grewAt: time.Now()}, nil
}

func sameFile(fh *os.File, fi os.FileInfo, fs FileState) error {
	id, err := idOf(fi)
	if err != nil {
		return err
	}
	if id != fs.id() {
		return errors.New("another file is at this path")
	}
	if fs.FPLen > 0 {
		fp, err := fingerprint(fh, fs.FPLen)
		if err != nil || fp != fs.FP {
			return errors.New("the file at this path has other contents (its inode was reused)")
		}
	}
	if fi.Size() < fs.Offset {
		return fmt.Errorf("the file is shorter (%d bytes) than the saved offset", fi.Size())
	}
	return nil
}

// findMoved looks for the file fs in the directory it was in.
func findMoved(fs FileState) (*file, error) {
	dir := filepath.Dir(fs.Path)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue
		}
		if id, err := idOf(fi); err != nil || id != fs.id() {
			continue
		}
		return reopen(filepath.Join(dir, e.Name()), fs)
	}
	return nil, errors.New("not found at its path nor in its directory")
}

// Scan evaluates the globs: it follows new files, notices rotated and
// removed ones, and restarts truncated ones.
func (fw *Follower) Scan(now time.Time) {
	matched := map[fileID]string{}
	var order []fileID
	for _, g := range fw.o.Paths {
		paths, _ := filepath.Glob(g) // patterns were checked in NewFollower
		for _, p := range paths {
			fi, err := os.Stat(p)
			if err != nil || !fi.Mode().IsRegular() {
				continue
			}
			id, err := idOf(fi)
			if err != nil {
				continue
			}
			if _, dup := matched[id]; !dup {
				matched[id] = p
				order = append(order, id)
			}
		}
	}
	known := map[fileID]bool{}
	for _, f := range fw.files {
		id := f.st.id()
		known[id] = true
		if p, ok := matched[id]; ok {
			if abs, err := filepath.Abs(p); err == nil {
				f.st.Path = abs
			}
			f.rotatedAt = time.Time{}
		} else if f.rotatedAt.IsZero() {
			f.rotatedAt = now
			fw.log.Info("tail: file rotated or removed; reading it to its end", "path", f.st.Path)
		}
		fw.check(f, now)
	}
	for _, id := range order {
		if known[id] {
			continue
		}
		if f, err := fw.follow(matched[id], id, now); err != nil {
			fw.log.Warn("tail: cannot follow file", "path", matched[id], "err", err)
		} else {
			fw.files = append(fw.files, f)
		}
	}
	fw.o.FromEnd = false
}

// follow opens a file seen for the first time, to be read from its start
// (or its end: FollowOptions.FromEnd).
func (fw *Follower) follow(path string, id fileID, now time.Time) (*file, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	fh, err := os.Open(abs)
	if err != nil {
		return nil, err
	}
	fi, err := fh.Stat()
	if err == nil {
		var got fileID
		if got, err = idOf(fi); err == nil && got != id {
			err = errors.New("replaced while being opened")
		}
	}
	var offset int64
	if err == nil && fw.o.FromEnd {
		offset, err = lastLineEnd(fh, fi.Size())
	}
	if err != nil {
		fh.Close()
		return nil, err
	}
	fw.log.Info("tail: following file", "path", abs, "offset", offset)
	f := &file{
		st: FileState{Path: abs, Dev: id.dev, Ino: id.ino, Epoch: newEpoch(), Offset: offset},
		f:  fh, size: fi.Size(), grewAt: now,
	}
	if offset > 0 {
		f.st.FPLen = min(fpSize, offset)
		if f.st.FP, err = fingerprint(fh, f.st.FPLen); err != nil {
			fh.Close()
			return nil, err
		}
	}
	return f, nil
}

// lastLineEnd is the offset just past the last "\n" in the first size
// bytes of f (0 when there is none).
func lastLineEnd(f *os.File, size int64) (int64, error) {
	buf := make([]byte, 64<<10)
	for end := size; end > 0; {
		start := max(0, end-int64(len(buf)))
		b := buf[:end-start]
		if _, err := f.ReadAt(b, start); err != nil && !errors.Is(err, io.EOF) {
			return 0, err
		}
		if i := lastIndexNL(b); i >= 0 {
			return start + int64(i) + 1, nil
		}
		end = start
	}
	return 0, nil
}

func lastIndexNL(b []byte) int {
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] == '\n' {
			return i
		}
	}
	return -1
}

// check notices growth and truncation of an open file.
func (fw *Follower) check(f *file, now time.Time) {
	fi, err := f.f.Stat()
	if err != nil {
		return
	}
	size := fi.Size()
	if size == f.size {
		return
	}
	truncated := size < f.st.Offset
	if !truncated && f.st.FPLen > 0 {
		fp, err := fingerprint(f.f, f.st.FPLen)
		truncated = err != nil || fp != f.st.FP
	}
	if truncated {
		fw.log.Info("tail: file truncated; reading it from the start", "path", f.st.Path, "size", size, "offset", f.st.Offset)
		f.st = FileState{Path: f.st.Path, Dev: f.st.Dev, Ino: f.st.Ino, Epoch: newEpoch()}
		f.told = false
	}
	f.size = size
	f.grewAt = now
}

// read reads up to window bytes of f from its offset and cuts them into
// records, appended to body. It returns the records, f's state after them,
// whether the window was full (more to read at once), and whether f is
// drained and can be dropped. It changes nothing of f: the caller applies
// the state once the records are stored (Tailer) or handed out (Next).
func (fw *Follower) read(f *file, body []byte, window int, now time.Time) (_ []byte, st FileState, full, done bool, err error) {
	st = f.st
	buf := fw.buf[:window]
	n, err := f.f.ReadAt(buf, st.Offset)
	if err != nil && !errors.Is(err, io.EOF) {
		return body, st, false, false, err
	}
	buf = buf[:n]
	full = n == window
	end := !full && !f.rotatedAt.IsZero() && now.Sub(later(f.rotatedAt, f.grewAt)) >= fw.o.RotateWait
	flush := !full && fw.cut.multi != nil && now.Sub(f.grewAt) >= fw.o.FlushAfter
	body, consumed, skip := fw.cut.cut(body, buf, st.Skip, end, flush, full)
	st.Offset += int64(consumed)
	st.Skip = skip
	if st.FPLen < fpSize && st.Offset > st.FPLen {
		st.FPLen = min(fpSize, st.Offset)
		if st.FP, err = fingerprint(f.f, st.FPLen); err != nil {
			return body, f.st, false, false, err
		}
	}
	return body, st, full, end && consumed == n, nil
}

// drop stops following f.
func (fw *Follower) drop(f *file) {
	fw.log.Info("tail: rotated file drained", "path", f.st.Path, "offset", f.st.Offset)
	f.f.Close()
	fw.files = slices.DeleteFunc(fw.files, func(g *file) bool { return g == f })
}

// Chunk is what Next read of one file.
type Chunk struct {
	// Start is the file's state before the records, State after them.
	Start, State FileState
	// Records are sluice.AppendRecord records (sluice.ReadRecords reads
	// them); empty when only the state changed: the file is new, started
	// over, skipped bytes of a long line, or is drained.
	Records []byte
	// Done: the file was drained after rotation and is no longer
	// followed; State is its last.
	Done bool
}

// Next reads the records that are ready in the next file with any, taking
// the files in turn, and moves that file's state on past them. ok is false
// when no file has anything (nor a change of state) to report; call it
// until then, and Scan again after a while. body's memory is reused for
// the records.
func (fw *Follower) Next(body []byte, now time.Time) (c Chunk, ok bool) {
	n := len(fw.files)
	for k := range n {
		i := (fw.next + k) % n
		f := fw.files[i]
		records, st, full, done, err := fw.read(f, body[:0], fw.o.Window, now)
		if err != nil {
			fw.log.Warn("tail: read failed; will retry", "path", f.st.Path, "err", err)
			continue
		}
		if len(records) == 0 && st == f.st && !done && f.told {
			continue
		}
		c = Chunk{Start: f.st, State: st, Records: records, Done: done}
		f.st, f.told = st, true
		fw.next = i
		if done {
			fw.drop(f)
		} else if !full {
			fw.next = i + 1 // a full window: this file goes on at once
		}
		return c, true
	}
	return Chunk{}, false
}
