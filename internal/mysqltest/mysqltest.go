// Package mysqltest gives each test a MariaDB/MySQL database of its own on
// the server at SLUICE_MYSQL_URL (.ci/run installs and starts Debian's
// mariadb-server and sets it).
package mysqltest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/go-sql-driver/mysql"
	"github.com/sluice-data/sluice/config"
)

// URL returns a mysql:// URL (the form an extract job's from takes) of a
// new, empty database that is dropped when the test ends, and a connection
// to it. Without SLUICE_MYSQL_URL the test is skipped, or fails when
// SLUICE_INTEGRATION=1 or CI=true.
func URL(t testing.TB) (string, *sql.DB) {
	t.Helper()
	base := os.Getenv("SLUICE_MYSQL_URL")
	if base == "" {
		const msg = "SLUICE_MYSQL_URL is not set (e.g. mysql://sluice:sluice@tcp(127.0.0.1:3306)/sluice; .ci/run sets it)"
		if os.Getenv("SLUICE_INTEGRATION") == "1" || os.Getenv("CI") == "true" {
			t.Fatal(msg + ": this test needs MariaDB or MySQL")
		}
		t.Skip(msg + ": skipping the MariaDB test; set SLUICE_INTEGRATION=1 to make this a failure")
	}
	_, dsn, err := config.SourceDB(base)
	if err != nil {
		t.Fatalf("SLUICE_MYSQL_URL: %v", err)
	}
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatalf("SLUICE_MYSQL_URL: %v", err)
	}
	b := make([]byte, 4)
	rand.Read(b)
	name := strings.ToLower(regexp.MustCompile(`[^A-Za-z0-9]+`).ReplaceAllString(t.Name(), "_"))
	db := "sluice_test_" + name[:min(len(name), 30)] + "_" + hex.EncodeToString(b)
	admin, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	ctx := context.Background()
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE `"+db+"`"); err != nil {
		t.Fatalf("create database %s: %v", db, err)
	}
	t.Cleanup(func() {
		admin, err := sql.Open("mysql", dsn)
		if err != nil {
			t.Errorf("drop database %s: %v", db, err)
			return
		}
		defer admin.Close()
		if _, err := admin.ExecContext(ctx, "DROP DATABASE `"+db+"`"); err != nil {
			t.Errorf("drop database %s: %v", db, err)
		}
	})
	cfg.DBName = db
	conn, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return "mysql://" + cfg.FormatDSN(), conn
}
