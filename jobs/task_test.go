package jobs

import (
	"strings"
	"testing"

	"github.com/sluice-data/sluice/config"
)

func testJobs() map[string]config.Job {
	return map[string]config.Job{
		"rev":    {Params: map[string]string{"date": "date"}, Output: config.Target{Table: "rev", PartitionBy: "dt"}},
		"weekly": {Params: map[string]string{"date": "date", "n": "int"}, Requires: []config.Requirement{{Job: "rev", Params: map[string]string{"date": "{{add_days .date -7}}"}}, {Job: "rev"}, {Lake: "events"}}},
	}
}

func TestNormalize(t *testing.T) {
	jobs := testJobs()
	got, err := Normalize(jobs, Task{Job: "weekly", Params: map[string]string{"date": "2026-11-05", "n": "007"}})
	if err != nil || got.String() != "weekly(date=2026-11-05, n=7)" {
		t.Fatalf("%v, %v", got, err)
	}
	for _, tc := range []struct {
		t    Task
		want string
	}{
		{Task{Job: "nope"}, `no job "nope" (the jobs are rev, weekly)`},
		{Task{Job: "rev"}, "job rev needs parameter date (a date)"},
		{Task{Job: "rev", Params: map[string]string{"date": "2026-02-30"}}, `parameter date is "2026-02-30", not a date (YYYY-MM-DD)`},
		{Task{Job: "rev", Params: map[string]string{"date": "2026-11-05", "x": "1"}}, `job rev has no parameter "x"`},
		{Task{Job: "weekly", Params: map[string]string{"date": "2026-11-05", "n": "1.5"}}, `parameter n is "1.5", not a whole number`},
	} {
		if _, err := Normalize(jobs, tc.t); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.t, err, tc.want)
		}
	}
	// The ids of tasks differ with their parameters, and are key-safe.
	a, b := Task{Job: "rev", Params: map[string]string{"date": "2026-11-05"}}, Task{Job: "rev", Params: map[string]string{"date": "2026-11-06"}}
	if a.id() == b.id() || strings.ContainsAny(a.id(), ". *>") {
		t.Errorf("ids %q %q", a.id(), b.id())
	}
}

func TestRequires(t *testing.T) {
	reqs, err := requires(testJobs(), Task{Job: "weekly", Params: map[string]string{"date": "2026-11-05", "n": "1"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(reqs) != 3 || reqs[0].task.String() != "rev(date=2026-10-29)" || reqs[1].task.String() != "rev(date=2026-11-05)" || reqs[2].target.Lake != "events" {
		t.Fatalf("requires: %+v %+v %+v", reqs[0], reqs[1], reqs[2])
	}
}

func TestDates(t *testing.T) {
	d, err := Dates("2026-02-27", "2026-03-02")
	if err != nil || strings.Join(d, " ") != "2026-02-27 2026-02-28 2026-03-01 2026-03-02" {
		t.Fatalf("%v, %v", d, err)
	}
	for _, tc := range [][2]string{{"2026-03-02", "2026-03-01"}, {"x", "2026-03-01"}, {"2026-03-01", "y"}, {"1900-01-01", "2026-01-01"}} {
		if _, err := Dates(tc[0], tc[1]); err == nil {
			t.Errorf("%v: no error", tc)
		}
	}
}
