package config

import (
	"testing"
	"time"
)

func TestSessionWindowConfig(t *testing.T) {
	pipeline := func(window string) string {
		return "pipelines:\n  p:\n    from: events\n    steps:\n      - window: " + window + "\n    to: {table: t}\n"
	}
	c, err := Parse("sluice.yaml", []byte(pipeline("{type: session, gap: 30m, group_by: [user_id], watermark: 1m, aggregates: {pages: count()}}")))
	if err != nil {
		t.Fatal(err)
	}
	if w := c.Pipelines["p"].Steps[0].Window; w.Type != "session" || w.Gap.D() != 30*time.Minute || w.Size != 0 {
		t.Errorf("decoded %+v", w)
	}
	for _, tc := range []struct {
		name, window string
		want         wantErr
	}{
		{"no gap", "{type: session, group_by: [user_id], aggregates: {n: count()}}",
			wantErr{5, 9, "pipelines.p.steps[0].window", "pipelines.p.steps[0].window: a session window needs gap", "type: session, gap: 30m"}},
		{"short gap", "{type: session, gap: 500ms, aggregates: {n: count()}}",
			wantErr{5, 38, "pipelines.p.steps[0].window.gap", "pipelines.p.steps[0].window.gap is 500ms; it must be at least 1s", "gap: 30m"}},
		{"size", "{type: session, gap: 30m, size: 1h, aggregates: {n: count()}}",
			wantErr{5, 49, "pipelines.p.steps[0].window.size", "a session window has no size; its length follows the events", "remove size"}},
		{"every", "{type: session, gap: 30m, every: 1m, aggregates: {n: count()}}",
			wantErr{5, 50, "pipelines.p.steps[0].window.every", "a session window has no every", "remove every"}},
		{"allowed lateness", "{type: session, gap: 30m, allowed_lateness: 5m, aggregates: {n: count()}}",
			wantErr{5, 61, "pipelines.p.steps[0].window.allowed_lateness", "a session window is written once, when it closes, and never updated", "raise watermark"}},
		{"gap of a tumbling window", "{type: tumbling, size: 1m, gap: 5m, aggregates: {n: count()}}",
			wantErr{5, 49, "pipelines.p.steps[0].window.gap", "pipelines.p.steps[0].window.gap is for session windows; this one is tumbling", "type: session"}},
		{"unknown type", "{type: sliding, size: 1m, aggregates: {n: count()}}",
			wantErr{5, 24, "pipelines.p.steps[0].window.type", `pipelines.p.steps[0].window.type is "sliding"`, "tumbling, hopping or session"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkErrors(t, pipeline(tc.window), []wantErr{tc.want})
		})
	}
}
