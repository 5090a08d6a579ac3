package pipeline

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/sluice-data/sluice/config"
)

// sinks are the outputs outside sluice that take NDJSON: files and
// webhooks. Both are at-least-once: after a crash the messages after the
// checkpoint are written again.
type sinks struct {
	files  map[string]*os.File
	client *http.Client
}

func newSinks() *sinks {
	return &sinks{files: map[string]*os.File{}, client: &http.Client{Timeout: 30 * time.Second}}
}

func (s *sinks) write(ctx context.Context, o config.Output, rows []Event) error {
	var data []byte
	for _, r := range rows {
		var err error
		if data, err = encode(data, r); err != nil {
			return err
		}
	}
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
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return fmt.Errorf("file output: %w", err)
		}
		var err error
		if f, err = os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err != nil {
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
	return nil
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
