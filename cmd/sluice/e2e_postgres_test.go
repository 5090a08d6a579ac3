package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-data/sluice/internal/pgtest"
)

// sluice up with warehouse.url postgres://…: `sluice sql` answers from
// PostgreSQL through the running server, and directly while none runs; rows
// the archiver flushes as sluice stops are loaded before it exits.
func TestPostgresWarehouseEndToEnd(t *testing.T) {
	url := pgtest.URL(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "sluice.yaml")
	configure := func(flush string) {
		t.Helper()
		if err := os.WriteFile(cfg, []byte(fmt.Sprintf("warehouse: {url: %q}\nlake: {flush_interval: %s}\n", url, flush)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	data := filepath.Join(dir, "data")
	client := &http.Client{Timeout: 10 * time.Second}
	send := func(p *proc, n int) {
		t.Helper()
		if ok, err := postOnce(client, p.collector, batch("pg", n, 100)); !ok || err != nil {
			p.stop(t)
			t.Fatalf("batch %d: %v %v", n, ok, err)
		}
	}
	sqlc := func(q string) string {
		t.Helper()
		out, err := exec.Command(binary, "sql", "-c", cfg, "--data", data, "--format", "json", q).CombinedOutput()
		if err != nil {
			return fmt.Sprintf("error %v: %s", err, out)
		}
		var res struct {
			Rows [][]any `json:"rows"`
		}
		if err := json.Unmarshal(out, &res); err != nil {
			return fmt.Sprintf("output %v: %s", err, out)
		}
		return fmt.Sprint(res.Rows)
	}
	// pg_typeof exists in PostgreSQL only: the answers come from there.
	const q = "SELECT count(*), pg_typeof(count(*))::text, sum(price) FROM events"

	configure("300ms")
	p := startSluice(t, data, freePort(t), freePort(t), "-c", cfg)
	for n := range 3 {
		send(p, n)
	}
	want := "[[300 bigint 15000]]"
	deadline := time.Now().Add(60 * time.Second)
	for got := sqlc(q); got != want; got = sqlc(q) {
		if time.Now().After(deadline) {
			p.stop(t)
			t.Fatalf("through the server: %s, want %s\n%s", got, want, p.log.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	p.stop(t)
	if got := sqlc(q); got != want {
		t.Errorf("directly: %s, want %s", got, want)
	}
	if got := sqlc("SELECT current_schema() LIKE 'test_%'"); got != "[[true]]" {
		t.Errorf("directly: not in the test's schema: %s", got)
	}

	// Again, with files written only when sluice stops: their rows are in
	// PostgreSQL once it has exited.
	configure("1h")
	p = startSluice(t, data, freePort(t), freePort(t), "-c", cfg)
	send(p, 3)
	for !strings.Contains(p.metrics(), `sluice_archive_buffered_rows{table="events"} 100`) {
		if time.Now().After(deadline) {
			p.stop(t)
			t.Fatalf("the archiver never held the batch:\n%s", p.metrics())
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.stop(t)
	if got, want := sqlc(q), "[[400 bigint 20000]]"; got != want {
		t.Errorf("after a stop that flushed: %s, want %s\n%s", got, want, p.log.String())
	}
}
