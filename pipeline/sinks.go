package pipeline

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/sluice-data/sluice/config"
)

// sinks are the outputs outside sluice that take NDJSON: files and
// webhooks. Webhooks are at-least-once: after a crash the messages after the
// checkpoint are posted again.
//
// Files are exactly-once when one worker writes them (exact): the
// checkpoint records each file's identity and size after the outputs of
// the positions it saves (marks), and a file opened again after a crash is
// first cut back to that size, so the rows written after the checkpoint,
// which are about to be written again, are there once. A file that is not
// the one recorded (rotated, replaced) or shorter than recorded is left as
// it is.
type sinks struct {
	files  map[string]*os.File
	sizes  map[string]fileMark // of the files written, after the last write
	marks  map[string]fileMark // from the checkpoint: where to cut back to
	exact  bool
	log    *slog.Logger
	client *http.Client
}

// fileMark is a file output's identity and size.
type fileMark struct {
	Dev  uint64 `json:"dev"`
	Ino  uint64 `json:"ino"`
	Size int64  `json:"size"`
}

func newSinks() *sinks {
	return &sinks{files: map[string]*os.File{}, sizes: map[string]fileMark{}, client: &http.Client{Timeout: 30 * time.Second}}
}

// start readies the sinks for a run: marks are the checkpoint's, exact
// says whether files may be cut back to them.
func (s *sinks) start(marks map[string]fileMark, exact bool, log *slog.Logger) {
	s.marks, s.exact, s.log = marks, exact, log
}

// write appends NDJSON lines to a file output, or posts them to a webhook.
func (s *sinks) write(ctx context.Context, o config.Output, data []byte) error {
	if o.File != "" {
		return s.appendFile(o.File, data)
	}
	return s.post(ctx, o.Webhook, data)
}

// appendFile appends data and syncs it: the checkpoint that follows must
// not get ahead of what the file durably holds.
func (s *sinks) appendFile(path string, data []byte) error {
	f := s.files[path]
	if f == nil {
		var err error
		if f, err = s.open(path); err != nil {
			return fmt.Errorf("file output: %w", err)
		}
		s.files[path] = f
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("file output %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("file output %s: %w", path, err)
	}
	m, err := markOf(f)
	if err != nil {
		return fmt.Errorf("file output %s: %w", path, err)
	}
	s.sizes[path] = m
	return nil
}

// open opens a file output for appending, first cutting it back to its
// mark.
func (s *sinks) open(path string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	mark, ok := s.marks[path]
	if !s.exact || !ok || !identities {
		return f, nil
	}
	cur, err := markOf(f)
	if err == nil && cur.Dev == mark.Dev && cur.Ino == mark.Ino && cur.Size > mark.Size {
		if err = f.Truncate(mark.Size); err == nil {
			err = f.Sync()
		}
		if err == nil {
			s.log.Info("file output: cut back to the checkpoint; the rows after it are written again",
				"path", path, "size", cur.Size, "to", mark.Size)
		}
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// post sends data as one NDJSON request; only a 2xx answer counts.
func (s *sinks) post(ctx context.Context, url string, data []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(data))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("webhook %s answered %s: %s", url, resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}

func (s *sinks) close() {
	for p, f := range s.files {
		f.Close()
		delete(s.files, p)
	}
}

// markOf is f's identity and size now.
func markOf(f *os.File) (fileMark, error) {
	fi, err := f.Stat()
	if err != nil {
		return fileMark{}, err
	}
	dev, ino, _ := fileIdentity(fi)
	return fileMark{Dev: dev, Ino: ino, Size: fi.Size()}, nil
}
