package main

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestGenerateAndCheck(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "events.ndjson")
	want, _, err := generate(in, 3000)
	if err != nil {
		t.Fatal(err)
	}
	if len(want) < 600 || len(want) > 1500 {
		t.Fatalf("%d of 3000 events pass the filter, want about a third", len(want))
	}
	// A correct output of each shape, made from the input.
	f, err := os.Open(in)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var flat, nested []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var ev map[string]any
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatal(err)
		}
		if !kept(ev["event"]) {
			continue
		}
		qty := 1.0
		if q, ok := ev["quantity"]; ok {
			qty = q.(float64)
		}
		ev["total"] = ev["price"].(float64) * qty
		b, _ := json.Marshal(ev)
		flat = append(flat, string(b))
		b, _ = json.Marshal(map[string]any{"app": "bench", "fields": ev, "total": ev["total"]})
		nested = append(nested, string(b))
	}
	write := func(lines []string) string {
		p := filepath.Join(dir, "out.ndjson")
		if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if err := check(write(flat), want, false); err != nil {
		t.Errorf("flat output: %v", err)
	}
	if err := check(write(nested), want, true); err != nil {
		t.Errorf("nested output: %v", err)
	}
	if err := check(write(flat[1:]), want, false); err == nil || !strings.Contains(err.Error(), "events, want") {
		t.Errorf("an event missing: %v", err)
	}
	if err := check(write(append(flat, flat[0])), want, false); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("an event twice: %v", err)
	}
	wrong := strings.Replace(flat[0], `"total":`, `"total":1`, 1)
	if err := check(write(append([]string{wrong}, flat[1:]...)), want, false); err == nil || !strings.Contains(err.Error(), "total") {
		t.Errorf("a wrong total: %v", err)
	}
}

func TestProcCPU(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	if _, err := procCPU(os.Getpid()); err != nil {
		t.Fatal(err)
	}
}

func TestProcMemory(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("no /proc")
	}
	hwm, anon, err := procMemory(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if hwm <= 0 || anon <= 0 || anon > hwm {
		t.Fatalf("VmHWM %d KiB, RssAnon %d KiB", hwm, anon)
	}
}
