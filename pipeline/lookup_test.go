package pipeline

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluice-data/sluice/config"
)

func TestLookupAndReload(t *testing.T) {
	file := filepath.Join(t.TempDir(), "countries.csv")
	os.WriteFile(file, []byte("code,name,region\nDE,Germany,EU\nUS,\"United States\",NA\n"), 0o644)
	s := mustStep(t, config.Step{Lookup: &config.LookupStep{File: file, Key: "country", Column: "code", Fields: []string{"name"}}})
	now := time.Now()
	out, _, _ := s.apply(ev(t, `{"country":"US"}`), now)
	if fmt.Sprint(out) != "map[country:US name:United States]" {
		t.Fatalf("lookup: %v", out)
	}
	if out, _, _ = s.apply(ev(t, `{"country":"FR"}`), now); fmt.Sprint(out) != "map[country:FR]" {
		t.Fatalf("no match: %v", out)
	}
	// A changed file is read again; a broken one keeps the table.
	os.WriteFile(file, []byte("code,name\nFR,France\n"), 0o644)
	if out, _, _ = s.apply(ev(t, `{"country":"FR"}`), now.Add(6*time.Second)); fmt.Sprint(out) != "map[country:FR name:France]" {
		t.Fatalf("after a change: %v", out)
	}
	os.WriteFile(file, []byte("nothing here\n\"unterminated\n"), 0o644)
	if out, _, _ = s.apply(ev(t, `{"country":"FR"}`), now.Add(12*time.Second)); fmt.Sprint(out) != "map[country:FR name:France]" {
		t.Fatalf("after a broken file: %v", out)
	}
	if _, err := newStep(config.Step{Lookup: &config.LookupStep{File: file + ".missing", Key: "country"}}); err == nil {
		t.Error("a missing file was accepted")
	}
}

func TestThrottle(t *testing.T) {
	s := mustStep(t, config.Step{Throttle: &config.ThrottleStep{Threshold: 3, Window: config.Duration(time.Second), Key: []string{"user"}}})
	now := time.Now().Truncate(time.Second)
	kept := map[string]int{}
	for i := range 10 {
		for _, u := range []string{"a", "b"} {
			if out, _, _ := s.apply(ev(t, fmt.Sprintf(`{"user":%q,"i":%d}`, u, i)), now.Add(time.Duration(i)*time.Millisecond)); out != nil {
				kept[u]++
			}
		}
	}
	if kept["a"] != 3 || kept["b"] != 3 {
		t.Fatalf("kept %v in one window, want 3 each", kept)
	}
	if out, _, _ := s.apply(ev(t, `{"user":"a"}`), now.Add(time.Second)); out == nil {
		t.Fatal("the next window still throttled")
	}
}
