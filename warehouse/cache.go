package warehouse

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/sluice-data/sluice/lake"
)

// cache is the local copy of a remote lake's live files, laid out as the
// lake is (so DuckDB's hive partitioning reads it the same way). Lake files
// are immutable, so a copy never goes stale; it goes unused when a
// compaction or retention takes its file out of the views, and is removed
// evictAfter later (a query that began before may still read it).
type cache struct {
	store lake.Store
	dir   string

	mu     sync.Mutex
	held   map[string]map[string]bool // per table, the keys its view reads
	unused map[string]time.Time       // keys no view reads, since when
}

// evictAfter is how long a copy no view reads stays: longer than a query.
const evictAfter = 10 * time.Minute

// fetchers is how many objects are downloaded at once.
const fetchers = 8

func newCache(store lake.Store, dir string) *cache {
	c := &cache{store: store, dir: dir, held: map[string]map[string]bool{}, unused: map[string]time.Time{}}
	// Copies from an earlier run count as unused until a view reads them
	// (their files may have been compacted or expired meanwhile).
	now := time.Now()
	filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return nil
		}
		if rel, err := filepath.Rel(dir, p); err == nil {
			if strings.HasPrefix(e.Name(), ".") {
				os.Remove(p) // a download cut short
			} else {
				c.unused[filepath.ToSlash(rel)] = now
			}
		}
		return nil
	})
	return c
}

func (c *cache) path(key string) string { return filepath.Join(c.dir, filepath.FromSlash(key)) }

// hold downloads the keys not yet local and records them as what table's
// view reads; the keys it read before and no longer does become unused, and
// those unused for evictAfter are deleted.
func (c *cache) hold(ctx context.Context, table string, keys []string) error {
	if err := c.download(ctx, keys); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	next := make(map[string]bool, len(keys))
	for _, k := range keys {
		next[k] = true
		delete(c.unused, k)
	}
	for k := range c.held[table] {
		if !next[k] {
			c.unused[k] = now
		}
	}
	c.held[table] = next
	for k, since := range c.unused {
		if now.Sub(since) >= evictAfter {
			os.Remove(c.path(k))
			delete(c.unused, k)
		}
	}
	return nil
}

// download fetches the keys that are not local, several at a time. A copy
// appears atomically (written aside, then renamed), so a reader never sees
// half of one.
func (c *cache) download(ctx context.Context, keys []string) error {
	var missing []string
	for _, k := range keys {
		if _, err := os.Stat(c.path(k)); err != nil {
			missing = append(missing, k)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	sem := make(chan struct{}, fetchers)
	errs := make(chan error, len(missing))
	var wg sync.WaitGroup
	for _, k := range missing {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			errs <- c.fetchOne(ctx, k)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func (c *cache) fetchOne(ctx context.Context, key string) error {
	data, err := c.store.Get(ctx, key)
	if err != nil {
		return fmt.Errorf("lake cache: %w", err)
	}
	dst := c.path(key)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("lake cache: %w", err)
	}
	f, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".*.tmp")
	if err != nil {
		return fmt.Errorf("lake cache: %w", err)
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), dst)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("lake cache %s: %w", key, err)
	}
	return nil
}
