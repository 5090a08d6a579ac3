package schema

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/bus"
)

func TestMerge(t *testing.T) {
	col := func(n string, typ sluice.ColumnType) sluice.Column { return sluice.Column{Name: n, Type: typ} }
	theirs := sluice.Schema{Columns: []sluice.Column{col("a", sluice.TypeBigint), col("b", sluice.TypeDouble), col("c", sluice.TypeVarchar)}}
	ours := sluice.Schema{Columns: []sluice.Column{col("a", sluice.TypeDouble), col("B", sluice.TypeBigint), col("d", sluice.TypeBoolean)}}
	m, err := Merge(theirs, ours)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range m.Columns {
		got = append(got, c.Name+" "+string(c.Type))
	}
	if strings.Join(got, ", ") != "a DOUBLE, b DOUBLE, c VARCHAR, d BOOLEAN" {
		t.Errorf("merged: %s", strings.Join(got, ", "))
	}
	if _, err := Merge(theirs, sluice.Schema{Columns: []sluice.Column{col("c", sluice.TypeBigint)}}); err == nil {
		t.Error("VARCHAR and BIGINT merged")
	}
}

// Two writers save one record: columns both added are kept, a column one
// widened stays wide, and types that cannot merge are ErrIncompatible.
func TestSave(t *testing.T) {
	ctx := context.Background()
	b, err := bus.Open(ctx, bus.Options{Dir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	at := "2026-11-25T10:00:00.000000Z"
	var s1, s2 sluice.Schema
	var r1, r2 uint64
	if _, _, err := Conform(&s1, "t", "at", map[string]any{"at": at, "n": int64(1)}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Conform(&s2, "t", "at", map[string]any{"at": at, "n": 1.5, "s": "x"}); err != nil {
		t.Fatal(err)
	}
	if err := Save(ctx, b, "t", &s1, &r1); err != nil {
		t.Fatal(err)
	}
	if err := Save(ctx, b, "t", &s2, &r2); err != nil {
		t.Fatal(err)
	}
	stored, _, _ := b.Schema(ctx, "t")
	var got []string
	for _, c := range stored.Columns {
		got = append(got, c.Name+" "+string(c.Type))
	}
	if strings.Join(got, ", ") != "at TIMESTAMP, n DOUBLE, s VARCHAR" {
		t.Errorf("saved: %s", strings.Join(got, ", "))
	}
	s3 := sluice.Schema{Columns: []sluice.Column{{Name: "s", Type: sluice.TypeBoolean}}}
	var r3 uint64
	if err := Save(ctx, b, "t", &s3, &r3); !errors.Is(err, ErrIncompatible) {
		t.Errorf("a BOOLEAN s over a VARCHAR one: %v", err)
	}
}
