package tail

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-data/sluice"
)

// drain calls Next until it has nothing more, and returns the chunks.
func drain(t *testing.T, fw *Follower, now time.Time) []Chunk {
	t.Helper()
	var out []Chunk
	for {
		c, ok := fw.Next(nil, now)
		if !ok {
			return out
		}
		out = append(out, c)
		if len(out) > 1000 {
			t.Fatal("Next does not stop")
		}
	}
}

func records(t *testing.T, cs []Chunk) []string {
	t.Helper()
	var out []string
	for _, c := range cs {
		if err := sluice.ReadRecords(c.Records, func(rec []byte, _ bool) error {
			out = append(out, string(rec))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func TestFollowerNextRestoreAndRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.log")
	if err := os.WriteFile(path, []byte("a1\na2\npartial"), 0o644); err != nil {
		t.Fatal(err)
	}
	fw, err := NewFollower(FollowOptions{Paths: []string{filepath.Join(dir, "*.log")}, Window: 8, MaxRecord: 4,
		RotateWait: time.Second, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer fw.Close()
	now := time.Now()
	fw.Scan(now)
	cs := drain(t, fw, now)
	if got := strings.Join(records(t, cs), ","); got != "a1,a2" {
		t.Fatalf("records %q, want a1,a2 (not the partial last line)", got)
	}
	if cs[0].Start.Offset != 0 || cs[len(cs)-1].State.Offset != 6 {
		t.Fatalf("chunks from %d to %d, want 0 to 6", cs[0].Start.Offset, cs[len(cs)-1].State.Offset)
	}
	for i := 1; i < len(cs); i++ {
		if cs[i].Start != cs[i-1].State {
			t.Fatalf("chunk %d starts at %+v, the one before ended at %+v", i, cs[i].Start, cs[i-1].State)
		}
	}
	saved := fw.State()

	// A new follower restored from the state goes on where it was, also
	// after the file was rotated away; it drains it once it is quiet.
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("\nb1\n")
	f.Close()
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	fw2, err := NewFollower(FollowOptions{Paths: []string{filepath.Join(dir, "*.log")}, Window: 8, MaxRecord: 4,
		RotateWait: time.Second, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer fw2.Close()
	fw2.Restore(saved)
	fw2.Scan(now)
	if got := strings.Join(records(t, drain(t, fw2, now)), ","); got != "part,b1" {
		t.Fatalf("after the restore, records %q, want part,b1 (partial cut at MaxRecord)", got)
	}
	later := now.Add(2 * time.Second)
	fw2.Scan(later)
	cs = drain(t, fw2, later)
	if len(cs) != 1 || !cs[0].Done || len(cs[0].Records) != 0 || len(fw2.State().Files) != 0 {
		t.Fatalf("drained rotated file: chunks %+v, state %+v", cs, fw2.State())
	}
}

func TestFollowerFromEnd(t *testing.T) {
	dir := t.TempDir()
	old := filepath.Join(dir, "old.log")
	if err := os.WriteFile(old, []byte("x1\nx2\nhalf"), 0o644); err != nil {
		t.Fatal(err)
	}
	fw, err := NewFollower(FollowOptions{Paths: []string{filepath.Join(dir, "*.log")}, FromEnd: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer fw.Close()
	now := time.Now()
	fw.Scan(now)
	cs := drain(t, fw, now)
	if len(records(t, cs)) != 0 || len(cs) != 1 || cs[0].State.Offset != 6 {
		t.Fatalf("from the end: chunks %+v, want one, at offset 6 and without records", cs)
	}
	f, _ := os.OpenFile(old, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("!\nx3\n")
	f.Close()
	if err := os.WriteFile(filepath.Join(dir, "new.log"), []byte("n1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fw.Scan(now)
	got := records(t, drain(t, fw, now))
	if strings.Join(got, ",") != "half!,x3,n1" && strings.Join(got, ",") != "n1,half!,x3" {
		t.Fatalf("records %q: want the rest of old.log and all of new.log", got)
	}
}
