// Package pgtest gives each test a PostgreSQL schema of its own on the
// server at SLUICE_POSTGRES_URL (.ci/run starts the machine's PostgreSQL 15
// and sets it).
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// URL returns SLUICE_POSTGRES_URL with its search_path set to a new, empty
// schema that is dropped when the test ends. Without SLUICE_POSTGRES_URL the
// test is skipped, or fails when SLUICE_INTEGRATION=1 (CI).
func URL(t testing.TB) string {
	t.Helper()
	base := os.Getenv("SLUICE_POSTGRES_URL")
	if base == "" {
		const msg = "SLUICE_POSTGRES_URL is not set (e.g. postgres://sluice:sluice@127.0.0.1:5432/sluice?sslmode=disable; .ci/run sets it)"
		if os.Getenv("SLUICE_INTEGRATION") == "1" {
			t.Fatal(msg + ": this test needs PostgreSQL")
		}
		t.Skip(msg + ": skipping the PostgreSQL test; set SLUICE_INTEGRATION=1 to make this a failure")
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		t.Fatal("SLUICE_POSTGRES_URL must be a postgres:// or postgresql:// URL")
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("SLUICE_POSTGRES_URL: %v", err)
	}
	defer conn.Close(ctx)
	b := make([]byte, 4)
	rand.Read(b)
	name := strings.ToLower(regexp.MustCompile(`[^A-Za-z0-9]+`).ReplaceAllString(t.Name(), "_"))
	schema := "test_" + name[:min(len(name), 40)] + "_" + hex.EncodeToString(b)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{schema}.Sanitize()); err != nil {
		t.Fatalf("create schema %s: %v", schema, err)
	}
	t.Cleanup(func() {
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}
