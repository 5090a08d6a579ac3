package lake

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sluice-data/sluice/bus"
)

// A lake the archiver wrote verifies clean; each kind of damage is found.
func TestVerify(t *testing.T) {
	ctx := context.Background()
	b := openBus(t, bus.StreamConfig{})
	d := newDir(t)
	saveSchema(t, b, ownColumns...)
	ar := startArchiver(t, b, d, EventsTable, time.Hour, 8)
	publishPairs(t, b, 1, 4) // 8 rows in two partitions: one flush
	ar.waitCommitted(t, 4)
	ar.stop(t)

	infos, problems, err := Verify(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	if len(problems) != 0 {
		t.Fatalf("a clean lake: %v", problems)
	}
	if len(infos) != 1 || infos[0].Table != "events" || infos[0].Committed != 4 || len(infos[0].Files) != 2 {
		t.Fatalf("inspect: %+v", infos)
	}
	rows := int64(0)
	for _, f := range infos[0].Files {
		rows += f.Rows
		if f.Bytes == 0 || f.First != 1 || f.Last != 4 || !strings.HasPrefix(f.Partition, "dt=2026-11-25/hr=1") {
			t.Errorf("file %+v", f)
		}
	}
	if rows != 8 {
		t.Errorf("%d rows in the footers, want 8", rows)
	}

	good := infos[0].Files[0]
	data, _ := d.Get(ctx, good.Key)
	put := func(key string, data []byte) {
		t.Helper()
		if err := d.Put(ctx, key, data); err != nil {
			t.Fatal(err)
		}
	}
	dir := "events/" + good.Partition + "/"
	put(dir+"events-5-6.parquet", data)                    // beyond the commit
	put(dir+"events-3-9.parquet", data)                    // overlaps 1-4 (and beyond)
	put(dir+"events-10-10.parquet", []byte("not parquet")) // unreadable
	if err := d.Delete(ctx, infos[0].Files[1].Key); err != nil {
		t.Fatal(err)
	}
	_, problems, err = Verify(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprint(problems)
	for _, want := range []string{
		"events-5-6.parquet: lies beyond the committed position 4",
		"events-10-10.parquet: not readable as Parquet",
		infos[0].Files[1].Key + ": named by the last commit but missing",
		"sequence ranges 1-4 and 3-9 overlap",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("problems lack %q:\n%s", want, strings.ReplaceAll(got, "} {", "}\n{"))
		}
	}
}
