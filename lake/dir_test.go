package lake

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

func newDir(t testing.TB) *Dir {
	t.Helper()
	d, err := NewDir(filepath.Join(t.TempDir(), "lake"))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestDirPutGetDelete(t *testing.T) {
	ctx := context.Background()
	d := newDir(t)
	if _, err := d.Get(ctx, "events/missing.parquet"); !errors.Is(err, ErrNotExist) {
		t.Errorf("Get of a missing key: %v, want ErrNotExist", err)
	}
	if err := d.Put(ctx, "events/dt=2026-11-25/hr=10/a.parquet", []byte("one")); err != nil {
		t.Fatal(err)
	}
	if err := d.Put(ctx, "events/dt=2026-11-25/hr=10/a.parquet", []byte("two")); err != nil {
		t.Fatal(err)
	}
	if got, err := d.Get(ctx, "events/dt=2026-11-25/hr=10/a.parquet"); err != nil || string(got) != "two" {
		t.Errorf("Get after two Puts = %q, %v; want two", got, err)
	}
	if err := d.Put(ctx, "empty", nil); err != nil {
		t.Fatal(err)
	}
	if got, err := d.Get(ctx, "empty"); err != nil || len(got) != 0 {
		t.Errorf("Get of an empty object = %q, %v", got, err)
	}
	if err := d.Delete(ctx, "events/dt=2026-11-25/hr=10/a.parquet"); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Get(ctx, "events/dt=2026-11-25/hr=10/a.parquet"); !errors.Is(err, ErrNotExist) {
		t.Errorf("Get after Delete: %v, want ErrNotExist", err)
	}
	for _, k := range []string{"events/dt=2026-11-25/hr=10/a.parquet", "never/was.parquet", "nope"} {
		if err := d.Delete(ctx, k); err != nil {
			t.Errorf("Delete of absent %s: %v", k, err)
		}
	}
	if got, err := d.List(ctx, ""); err != nil || !slices.Equal(got, []string{"empty"}) {
		t.Errorf("List after the deletes = %q, %v", got, err)
	}
}

func TestDirList(t *testing.T) {
	ctx := context.Background()
	parent := t.TempDir()
	d, err := NewDir(filepath.Join(parent, "lake"))
	if err != nil {
		t.Fatal(err)
	}
	// Beside the lake in the data dir: not the lake's.
	for _, p := range []string{"bus/stream.blk", "warehouse.duckdb", "lake-old/events/x.parquet"} {
		os.MkdirAll(filepath.Join(parent, filepath.Dir(p)), 0o755)
		if err := os.WriteFile(filepath.Join(parent, p), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	keys := []string{
		"_sluice/commits/events.json",
		"bad/dt=2026-11-25/hr=10/bad-1-2.parquet",
		"events/dt=2026-11-24/hr=23/events-1-9.parquet",
		"events/dt=2026-11-25/hr=01/events-1-9.parquet",
		"events/dt=2026-11-25/hr=10/events-1-9.parquet",
		"events/dt=2026-11-25/hr=10/events-10-12.parquet",
		"events/dt=2026-11-25/hr=11/events-10-12.parquet",
		"eventsx/dt=2026-11-25/hr=10/eventsx-1-1.parquet",
		"top.json",
	}
	for _, k := range keys {
		if err := d.Put(ctx, k, []byte(k)); err != nil {
			t.Fatal(err)
		}
	}
	// Hidden files (temp files of an interrupted Put) are not objects.
	os.WriteFile(filepath.Join(d.Root(), "events", "dt=2026-11-25", "hr=10", ".events-1-9.parquet.123.tmp"), []byte("half"), 0o644)
	tests := []struct {
		prefix string
		want   []string
	}{
		{"", keys},
		{"events/", keys[2:7]},
		{"events", keys[2:8]},
		{"events/dt=2026-11-25/", keys[3:7]},
		{"events/dt=2026-11-25/hr=1", keys[4:7]},
		{"events/dt=2026-11-25/hr=10/", keys[4:6]},
		{"events/dt=2026-11-25/hr=10/events-1", keys[4:6]},
		{"events/dt=2026-11-25/hr=10/events-10", keys[5:6]},
		{"_sluice/", keys[:1]},
		{"t", keys[8:]},
		{"missing/", nil},
		{"missing", nil},
		{"events/dt=2026-12-01/", nil},
	}
	for _, tt := range tests {
		got, err := d.List(ctx, tt.prefix)
		if err != nil {
			t.Errorf("List(%q): %v", tt.prefix, err)
			continue
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("List(%q):\n got %q\nwant %q", tt.prefix, got, tt.want)
		}
	}
	if tables, err := Tables(ctx, d); err != nil || !slices.Equal(tables, []string{"bad", "events", "eventsx"}) {
		t.Errorf("Tables = %q, %v", tables, err)
	}
	files, err := Files(ctx, d, "events")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 5 || files[3] != (DataFile{Key: keys[5], Stream: "events", First: 10, Last: 12}) {
		t.Errorf("Files(events) = %+v", files)
	}
}

var tempName = regexp.MustCompile(`^\..+\.tmp$`)

// Readers see an object whole or not at all, while it is being replaced, and
// never see a temp file as an object.
func TestDirPutIsAtomic(t *testing.T) {
	ctx := context.Background()
	d := newDir(t)
	const key = "events/dt=2026-11-25/hr=10/events-1-2.parquet"
	dir := filepath.Join(d.Root(), "events", "dt=2026-11-25", "hr=10")
	versions := [][]byte{bytes.Repeat([]byte("a"), 4<<20), bytes.Repeat([]byte("b"), 4<<20)}
	if err := d.Put(ctx, key, versions[0]); err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	var temps sync.Map
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			keys, err := d.List(ctx, "events/")
			if err != nil || !slices.Equal(keys, []string{key}) {
				t.Errorf("List during Put = %q, %v", keys, err)
				return
			}
			got, err := d.Get(ctx, key)
			if err != nil || !(bytes.Equal(got, versions[0]) || bytes.Equal(got, versions[1])) {
				t.Errorf("Get during Put: %d bytes, %v: not one whole version", len(got), err)
				return
			}
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				if e.Name() != filepath.Base(key) {
					temps.Store(e.Name(), true)
				}
			}
		}
	}()
	for i := range 20 {
		if err := d.Put(ctx, key, versions[i%2]); err != nil {
			t.Fatal(err)
		}
	}
	stop.Store(true)
	wg.Wait()
	n := 0
	temps.Range(func(name, _ any) bool {
		n++
		if !tempName.MatchString(name.(string)) || !strings.Contains(name.(string), filepath.Base(key)) {
			t.Errorf("temp file %q does not start with '.' and end in .tmp", name)
		}
		return true
	})
	t.Logf("saw %d temp files while writing", n)
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("left behind: %v", entries)
	}
}

// A Put that cannot complete leaves neither the object nor its temp file.
func TestDirPutFailureLeavesNothing(t *testing.T) {
	ctx := context.Background()
	d := newDir(t)
	// A directory where the object should go: the rename fails.
	if err := os.MkdirAll(filepath.Join(d.Root(), "t", "obj", "child"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := d.Put(ctx, "t/obj", []byte("data")); err == nil {
		t.Fatal("Put over a directory succeeded")
	}
	entries, _ := os.ReadDir(filepath.Join(d.Root(), "t"))
	if len(entries) != 1 || entries[0].Name() != "obj" {
		t.Errorf("after a failed Put: %v", entries)
	}
}
