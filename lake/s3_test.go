package lake

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-data/sluice/internal/s3test"
)

// The Store contract, on every implementation: a directory, gofakes3 in
// this process, and versitygw (a real S3 server that checks signatures).
func TestStoreDir(t *testing.T) { testStore(t, newDir(t), nil) }

func TestStoreS3Fake(t *testing.T) {
	srv := s3test.StartFake(t)
	srv.Setenv(t)
	testStore(t, openS3(t, srv.URL), srv)
}

func TestStoreS3Versitygw(t *testing.T) {
	srv := s3test.Start(t)
	srv.Setenv(t)
	testStore(t, openS3(t, srv.URL), srv)
}

func openS3(t *testing.T, url string) *S3 {
	t.Helper()
	s, err := OpenS3(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func testStore(t *testing.T, s Store, srv *s3test.Server) {
	ctx := context.Background()
	t.Run("PutGetDelete", func(t *testing.T) {
		const key = "events/dt=2026-11-25/hr=10/a.parquet"
		if _, err := s.Get(ctx, "events/missing.parquet"); !errors.Is(err, ErrNotExist) || !strings.Contains(err.Error(), "events/missing.parquet") {
			t.Errorf("Get of a missing key: %v, want ErrNotExist naming the key", err)
		}
		for _, v := range []string{"one", "two"} {
			if err := s.Put(ctx, key, []byte(v)); err != nil {
				t.Fatal(err)
			}
		}
		if got, err := s.Get(ctx, key); err != nil || string(got) != "two" {
			t.Errorf("Get after two Puts = %q, %v; want two", got, err)
		}
		if err := s.Put(ctx, "p/empty", nil); err != nil {
			t.Fatal(err)
		}
		if got, err := s.Get(ctx, "p/empty"); err != nil || len(got) != 0 {
			t.Errorf("Get of an empty object = %q, %v", got, err)
		}
		if err := s.Delete(ctx, key); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Get(ctx, key); !errors.Is(err, ErrNotExist) {
			t.Errorf("Get after Delete: %v, want ErrNotExist", err)
		}
		for _, k := range []string{key, "never/was.parquet", "nope"} {
			if err := s.Delete(ctx, k); err != nil {
				t.Errorf("Delete of absent %s: %v", k, err)
			}
		}
		if got, err := s.List(ctx, "p/"); err != nil || !slices.Equal(got, []string{"p/empty"}) {
			t.Errorf("List after the deletes = %q, %v", got, err)
		}
		s.Delete(ctx, "p/empty")
	})

	t.Run("List", func(t *testing.T) {
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
		// Put in reverse: the order of List is not the order of writing.
		for _, k := range slices.Backward(keys) {
			if err := s.Put(ctx, k, []byte(k)); err != nil {
				t.Fatal(err)
			}
		}
		for _, tt := range []struct {
			prefix string
			want   []string
		}{
			{"", keys},
			{"events/", keys[2:7]},
			{"events", keys[2:8]},
			{"events/dt=2026-11-25/", keys[3:7]},
			{"events/dt=2026-11-25/hr=1", keys[4:7]},
			{"events/dt=2026-11-25/hr=10/events-10", keys[5:6]},
			{"_sluice/", keys[:1]},
			{"t", keys[8:]},
			{"missing/", nil},
			{"events/dt=2026-12-01/", nil},
		} {
			got, err := s.List(ctx, tt.prefix)
			if err != nil {
				t.Errorf("List(%q): %v", tt.prefix, err)
			} else if !slices.Equal(got, tt.want) {
				t.Errorf("List(%q):\n got %q\nwant %q", tt.prefix, got, tt.want)
			}
		}
		if tables, err := Tables(ctx, s); err != nil || !slices.Equal(tables, []string{"bad", "events", "eventsx"}) {
			t.Errorf("Tables = %q, %v", tables, err)
		}
		for _, k := range keys {
			if err := s.Delete(ctx, k); err != nil {
				t.Fatal(err)
			}
		}
	})

	// Keys a user's table or a tool could produce; each round-trips and
	// lists as itself, in byte order.
	t.Run("HostileKeys", func(t *testing.T) {
		keys := []string{
			"h/with space/a b.parquet",
			"h/ünïcödé/日本語-1-2.parquet",
			"h/emoji/🦆.json",
			"h/query?x=1&y=2#frag",
			"h/percent%20and+plus",
			"h/quotes'\"and`back\\slash",
			"h/brackets[]{}()<>|*~!$,;:@=",
			"h/trailing.",
			"h/dots..in..name",
		}
		for _, k := range keys {
			if err := s.Put(ctx, k, []byte("v:"+k)); err != nil {
				t.Fatalf("Put(%q): %v", k, err)
			}
		}
		for _, k := range keys {
			if got, err := s.Get(ctx, k); err != nil || string(got) != "v:"+k {
				t.Errorf("Get(%q) = %q, %v", k, got, err)
			}
		}
		want := slices.Sorted(slices.Values(keys))
		if got, err := s.List(ctx, "h/"); err != nil || !slices.Equal(got, want) {
			t.Errorf("List(h/):\n got %q\nwant %q (%v)", got, want, err)
		}
		if got, err := s.List(ctx, "h/ünïcödé/"); err != nil || !slices.Equal(got, keys[1:2]) {
			t.Errorf("List by a unicode prefix = %q, %v", got, err)
		}
		for _, k := range keys {
			if err := s.Delete(ctx, k); err != nil {
				t.Errorf("Delete(%q): %v", k, err)
			}
		}
		if got, err := s.List(ctx, "h/"); err != nil || len(got) != 0 {
			t.Errorf("after deleting all: %q, %v", got, err)
		}
	})

	// More keys than one page of a listing (S3 pages hold 1000).
	t.Run("ListPages", func(t *testing.T) {
		const n = 1100
		var want []string
		for i := range n {
			want = append(want, fmt.Sprintf("many/dt=2026-11-25/hr=%02d/events-%d-%d.parquet", i%24, i, i))
		}
		parallel(t, want, func(k string) error { return s.Put(ctx, k, []byte(k)) })
		slices.Sort(want)
		got, err := s.List(ctx, "many/")
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("List of %d keys: %d keys, %v; first difference at %d", n, len(got), err, firstDiff(got, want))
		}
		if got, err := s.List(ctx, "many/dt=2026-11-25/hr=07/"); err != nil || len(got) != n/24+1 {
			t.Errorf("List of one hour: %d keys, %v", len(got), err)
		}
		parallel(t, want, func(k string) error { return s.Delete(ctx, k) })
	})

	// An object of PartSize or more goes up in parts and comes back whole.
	t.Run("LargeObject", func(t *testing.T) {
		data := make([]byte, PartSize*2+12345)
		rand.Read(data)
		const key = "big/dt=2026-11-25/hr=10/events-1-1000000.parquet"
		if err := s.Put(ctx, key, data); err != nil {
			t.Fatal(err)
		}
		got, err := s.Get(ctx, key)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("Get of %d bytes: %d bytes, %v", len(data), len(got), err)
		}
		if s3, ok := s.(*S3); ok {
			attrs, err := s3.bucket.Attributes(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			// A multipart object's ETag is the hash of its parts' hashes,
			// then "-" and the number of parts (on a real server: gofakes3,
			// with no Root, hashes the whole object).
			if srv.Root != "" && !strings.HasSuffix(attrs.ETag, `-3"`) {
				t.Errorf("ETag %s: not a 3-part upload", attrs.ETag)
			}
			r, err := s3.Open(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			streamed, err := io.ReadAll(r)
			r.Close()
			if err != nil || !bytes.Equal(streamed, data) {
				t.Errorf("Open: %d bytes, %v", len(streamed), err)
			}
			if _, err := s3.Open(ctx, "big/missing"); !errors.Is(err, ErrNotExist) {
				t.Errorf("Open of a missing key: %v", err)
			}
			if ups := srv.Uploads(); len(ups) != 0 {
				t.Errorf("multipart uploads left open: %q", ups)
			}
		}
		if err := s.Delete(ctx, key); err != nil {
			t.Fatal(err)
		}
	})
}

func parallel(t *testing.T, keys []string, f func(string) error) {
	t.Helper()
	ch := make(chan string)
	var wg sync.WaitGroup
	var failed atomic.Value
	for range 8 {
		wg.Go(func() {
			for k := range ch {
				if err := f(k); err != nil {
					failed.Store(err)
				}
			}
		})
	}
	for _, k := range keys {
		ch <- k
	}
	close(ch)
	wg.Wait()
	if err := failed.Load(); err != nil {
		t.Fatal(err)
	}
}

func firstDiff(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// Readers see the old or the new object while it is replaced, also when the
// new one goes up in parts.
func TestS3PutIsAtomic(t *testing.T) {
	srv := s3test.Start(t)
	srv.Setenv(t)
	s := openS3(t, srv.URL)
	ctx := context.Background()
	const key = "events/dt=2026-11-25/hr=10/events-1-2.parquet"
	versions := [][]byte{bytes.Repeat([]byte("a"), PartSize+1<<20), bytes.Repeat([]byte("b"), PartSize+1<<20)}
	if err := s.Put(ctx, key, versions[0]); err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	var reads atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		for !stop.Load() {
			got, err := s.Get(ctx, key)
			if err != nil || !(bytes.Equal(got, versions[0]) || bytes.Equal(got, versions[1])) {
				t.Errorf("Get during Put: %d bytes, %v: not one whole version", len(got), err)
				return
			}
			reads.Add(1)
		}
	})
	for i := range 6 {
		if err := s.Put(ctx, key, versions[(i+1)%2]); err != nil {
			t.Fatal(err)
		}
	}
	stop.Store(true)
	wg.Wait()
	t.Logf("%d whole reads during 6 multipart replacements", reads.Load())
}

// A Put cut short leaves no object and no upload behind.
func TestS3PutCancelled(t *testing.T) {
	srv := s3test.Start(t)
	srv.Setenv(t)
	s := openS3(t, srv.URL)
	data := make([]byte, 4*PartSize)
	const key = "events/dt=2026-11-25/hr=10/events-1-9.parquet"
	for _, after := range []time.Duration{0, 20 * time.Millisecond, 100 * time.Millisecond} {
		ctx, cancel := context.WithTimeout(context.Background(), after)
		err := s.Put(ctx, key, data)
		cancel()
		if err == nil {
			t.Logf("the Put of %d bytes finished within %s", len(data), after)
			s.Delete(context.Background(), key)
			continue
		}
		if !strings.Contains(err.Error(), key) {
			t.Errorf("error does not name the key: %v", err)
		}
		if _, err := s.Get(context.Background(), key); !errors.Is(err, ErrNotExist) {
			t.Errorf("after a Put cancelled at %s: Get = %v, want ErrNotExist", after, err)
		}
		if ups := srv.Uploads(); len(ups) != 0 {
			t.Errorf("after a Put cancelled at %s: uploads left open: %q", after, ups)
		}
	}
}

// The lake is what is under its prefix: a neighbour prefix that starts with
// the same letters is not part of it, and keys are relative to the prefix.
func TestS3Prefix(t *testing.T) {
	srv := s3test.StartFake(t)
	srv.Setenv(t)
	ctx := context.Background()
	a := openS3(t, srv.LakeURL(srv.Bucket, "lake"))
	b := openS3(t, srv.LakeURL(srv.Bucket, "lake2/"))
	root := openS3(t, srv.LakeURL(srv.Bucket, ""))
	deep := openS3(t, srv.LakeURL(srv.Bucket, "lake/sub"))
	if err := a.Put(ctx, "events/x.parquet", []byte("a")); err != nil {
		t.Fatal(err)
	}
	if err := b.Put(ctx, "events/y.parquet", []byte("b")); err != nil {
		t.Fatal(err)
	}
	if err := deep.Put(ctx, "events/z.parquet", []byte("d")); err != nil {
		t.Fatal(err)
	}
	if got, _ := a.List(ctx, ""); !slices.Equal(got, []string{"events/x.parquet", "sub/events/z.parquet"}) {
		t.Errorf("lake lists %q", got)
	}
	if got, _ := b.List(ctx, ""); !slices.Equal(got, []string{"events/y.parquet"}) {
		t.Errorf("lake2 lists %q", got)
	}
	if got, _ := root.List(ctx, ""); !slices.Equal(got, []string{"lake/events/x.parquet", "lake/sub/events/z.parquet", "lake2/events/y.parquet"}) {
		t.Errorf("the bucket lists %q", got)
	}
	if got := srv.Keys("lake/"); !slices.Equal(got, []string{"lake/events/x.parquet", "lake/sub/events/z.parquet"}) {
		t.Errorf("the server holds %q", got)
	}
	if a.String() != "s3://sluice-lake/lake/" || root.String() != "s3://sluice-lake/" {
		t.Errorf("String() = %s, %s", a, root)
	}
}

func TestS3OpenBadURL(t *testing.T) {
	srv := s3test.StartFake(t)
	srv.Setenv(t)
	q := "?endpoint=" + srv.Endpoint + "&region=us-east-1&use_path_style=true"
	for _, tt := range []struct{ url, want string }{
		{"s3://", "no bucket"},
		{"s3:///lake" + q, "no bucket"},
		{"s3://key:secret@sluice-lake/lake" + q, "AWS_ACCESS_KEY_ID"},
		{"s3://sluice-lake/a//b" + q, "empty, . or .. segment"},
		{"s3://sluice-lake/a/../b" + q, "empty, . or .. segment"},
		{"s3://sluice-lake/lake" + q + "#x", "fragment"},
		{"s3://sluice-lake/lake" + q + "&bucket_region=x", `unknown query parameter "bucket_region"`},
		{"s3://sluice-lake/lake?endpoint=" + srv.Endpoint + "&use_path_style=maybe", `"use_path_style"`},
		{"gs://sluice-lake/lake", "not an s3:// URL"},
		{"s3://no-such-bucket/lake" + q, `bucket "no-such-bucket" does not exist`},
		{"s3://sluice lake/lake", "invalid character"},
	} {
		s, err := OpenS3(context.Background(), tt.url)
		if err == nil {
			s.Close()
			t.Errorf("OpenS3(%q) succeeded", tt.url)
		} else if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("OpenS3(%q):\n %v\nwant it to say %q", tt.url, err, tt.want)
		}
	}
}

// A wrong key or secret fails at open, and says which one to check.
func TestS3OpenWrongCredentials(t *testing.T) {
	srv := s3test.Start(t)
	for _, tt := range []struct{ env, value, want string }{
		{"AWS_SECRET_ACCESS_KEY", "not-the-secret", "check AWS_SECRET_ACCESS_KEY"},
		{"AWS_ACCESS_KEY_ID", "not-the-key", "check AWS_ACCESS_KEY_ID"},
	} {
		t.Run(tt.env, func(t *testing.T) {
			srv.Setenv(t)
			t.Setenv(tt.env, tt.value)
			s, err := OpenS3(context.Background(), srv.URL)
			if err == nil {
				s.Close()
				t.Fatal("OpenS3 with wrong credentials succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "s3://sluice-lake/lake/") {
				t.Errorf("error %q\nwant it to name the lake and say %q", err, tt.want)
			}
		})
	}
	t.Run("none", func(t *testing.T) {
		srv.Setenv(t)
		t.Setenv("AWS_ACCESS_KEY_ID", "")
		t.Setenv("AWS_SECRET_ACCESS_KEY", "")
		start := time.Now()
		s, err := OpenS3(context.Background(), srv.URL)
		if err == nil {
			s.Close()
			t.Fatal("OpenS3 without credentials succeeded")
		}
		if !strings.Contains(err.Error(), "no AWS credentials") {
			t.Errorf("error %q\nwant it to say there are no credentials", err)
		}
		t.Logf("failed after %s: %v", time.Since(start), err)
	})
}

// A server that is not there fails at open and says so.
func TestS3OpenUnreachable(t *testing.T) {
	srv := s3test.StartFake(t)
	srv.Setenv(t)
	u := "s3://sluice-lake/lake?endpoint=http://127.0.0.1:1&region=us-east-1&use_path_style=true"
	start := time.Now()
	_, err := OpenS3(context.Background(), u)
	if err == nil || !strings.Contains(err.Error(), "cannot reach the S3 endpoint") {
		t.Errorf("OpenS3 of a closed port: %v", err)
	}
	t.Logf("failed after %s", time.Since(start))
}

// A bucket that disappears under a running lake is an error, never an
// empty lake (which would restart archiving from the beginning).
func TestS3BucketGone(t *testing.T) {
	srv := s3test.Start(t)
	srv.Setenv(t)
	s := openS3(t, srv.URL)
	ctx := context.Background()
	if err := os.RemoveAll(filepath.Join(srv.Root, srv.Bucket)); err != nil {
		t.Fatal(err)
	}
	_, err := s.Get(ctx, "_sluice/commits/events.json")
	if err == nil || errors.Is(err, ErrNotExist) || !strings.Contains(err.Error(), "does not exist: create it") {
		t.Errorf("Get in a deleted bucket: %v; want an error that is not ErrNotExist", err)
	}
	if err := s.Put(ctx, "events/a.parquet", []byte("x")); err == nil || !strings.Contains(err.Error(), `bucket "sluice-lake" does not exist`) {
		t.Errorf("Put in a deleted bucket: %v", err)
	}
	if _, err := s.List(ctx, ""); err == nil || !strings.Contains(err.Error(), `bucket "sluice-lake" does not exist`) {
		t.Errorf("List in a deleted bucket: %v", err)
	}
}

func TestOpen(t *testing.T) {
	srv := s3test.StartFake(t)
	srv.Setenv(t)
	ctx := context.Background()
	dir := t.TempDir()
	for _, tt := range []struct {
		url     string
		wantDir string // "" for S3
		wantErr string
	}{
		{url: filepath.Join(dir, "a"), wantDir: filepath.Join(dir, "a")},
		{url: "file://" + filepath.Join(dir, "b"), wantDir: filepath.Join(dir, "b")},
		{url: srv.URL},
		{url: "", wantErr: "no lake"},
		{url: "file://host/srv/lake", wantErr: "file:///absolute/path"},
		{url: "gs://bucket/lake", wantErr: "not gs://"},
		{url: "s3://no-such-bucket/lake?endpoint=" + srv.Endpoint + "&region=us-east-1&use_path_style=true", wantErr: "does not exist"},
	} {
		s, err := Open(ctx, tt.url)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Open(%q): %v; want an error saying %q", tt.url, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("Open(%q): %v", tt.url, err)
			continue
		}
		switch s := s.(type) {
		case *Dir:
			if s.Root() != tt.wantDir || IsRemote(tt.url) {
				t.Errorf("Open(%q) = Dir %s, want %s", tt.url, s.Root(), tt.wantDir)
			}
		case *S3:
			if tt.wantDir != "" || !IsRemote(tt.url) || s.String() != "s3://sluice-lake/lake/" {
				t.Errorf("Open(%q) = %s", tt.url, s)
			}
			s.Close()
		}
	}
}

// go test ./lake -run '^$' -bench S3 -benchtime 10x: 64 MiB objects (four
// 16 MiB parts) to and from versitygw on this machine.
func BenchmarkS3Put64MiB(b *testing.B) { benchS3(b, false) }
func BenchmarkS3Get64MiB(b *testing.B) { benchS3(b, true) }

func benchS3(b *testing.B, get bool) {
	srv := s3test.Start(b)
	srv.Setenv(b)
	s, err := OpenS3(context.Background(), srv.URL)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	data := make([]byte, 64<<20)
	rand.Read(data)
	if get {
		if err := s.Put(ctx, "bench/obj.parquet", data); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(data)))
	for i := 0; b.Loop(); i++ {
		if get {
			_, err = s.Get(ctx, "bench/obj.parquet")
		} else {
			err = s.Put(ctx, fmt.Sprintf("bench/obj-%d.parquet", i), data)
		}
		if err != nil {
			b.Fatal(err)
		}
	}
}
