package config

import (
	"fmt"
	"testing"
)

func TestPipelineFileInput(t *testing.T) {
	c, err := Parse("sluice.yaml", []byte(`pipelines:
  a:
    from: {file: {paths: [/var/log/app/*.ndjson, /tmp/x.json]}}
    to: {file: out.ndjson}
  b:
    from: [events, {file: {paths: [/var/log/*.log], parse: plain, multiline: '^\S'}}]
    start: now
    to: {table: t}
`))
	if err != nil {
		t.Fatal(err)
	}
	a, b := c.Pipelines["a"], c.Pipelines["b"]
	if f := a.From.File(); f == nil || fmt.Sprint(f.Paths) != "[/var/log/app/*.ndjson /tmp/x.json]" || f.Parse != "" || len(a.From.Streams()) != 0 {
		t.Errorf("a.from: %+v", a.From)
	}
	if f := b.From.File(); f == nil || f.Parse != FileParsePlain || f.Multiline != `^\S` || fmt.Sprint(b.From.Streams()) != "[events]" {
		t.Errorf("b.from: %+v", b.From)
	}
	if got := fmt.Sprint(b.From); got != "[events file [/var/log/*.log]]" {
		t.Errorf("b.from prints as %q", got)
	}
}

func TestPipelineFileInputErrors(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		want      wantErr
	}{
		{"no paths", "pipelines:\n  p: {from: {file: {parse: json}}, to: {stream: out}}\n",
			wantErr{2, 20, "pipelines.p.from.file", "pipelines.p.from.file needs paths", "e.g. from: {file:"}},
		{"bad glob", "pipelines:\n  p: {from: {file: {paths: ['a[']}}, to: {stream: out}}\n",
			wantErr{2, 29, "pipelines.p.from.file.paths[0]", `pipelines.p.from.file.paths[0] "a[" is not a glob pattern`, ""}},
		{"unknown parse", "pipelines:\n  p: {from: {file: {paths: [a], parse: csv}}, to: {stream: out}}\n",
			wantErr{2, 40, "pipelines.p.from.file.parse", `pipelines.p.from.file.parse is "csv"`, "json"}},
		{"bad multiline", "pipelines:\n  p: {from: [events, {file: {paths: [a], multiline: '('}}], to: {stream: out}}\n",
			wantErr{2, 53, "pipelines.p.from[1].file.multiline", "pipelines.p.from[1].file.multiline: error parsing regexp", ""}},
		{"two file inputs", "pipelines:\n  p: {from: [{file: {paths: [a]}}, {file: {paths: [b]}}], to: {stream: out}}\n",
			wantErr{2, 43, "pipelines.p.from[1].file", "pipelines.p.from[1].file: a pipeline reads one file input", ""}},
		{"workers", "pipelines:\n  p: {from: {file: {paths: [a]}}, workers: 2, to: {stream: out}}\n",
			wantErr{2, 44, "pipelines.p.workers", "pipeline p reads files with 2 workers", "leave workers at 1"}},
		{"unknown key", "pipelines:\n  p: {from: {file: {paths: [a], path: b}}, to: {stream: out}}\n",
			wantErr{2, 33, "pipelines.p.from.file.path", `unknown key "path"`, "did you mean paths?"}},
		{"two pipelines write one file", "pipelines:\n  p: {from: events, to: {file: out.ndjson}}\n  q: {from: logs, to: {file: ./out.ndjson}}\n",
			wantErr{3, 3, "pipelines.q", "pipelines p and q both write file ./out.ndjson", "give each pipeline a file of its own"}},
		{"lake output needs a time", "pipelines:\n  p: {from: {file: {paths: [a]}}, to: {lake: t}}\n",
			wantErr{2, 46, "pipelines.p.to.lake", "no time column", ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkErrors(t, tc.src, []wantErr{tc.want})
		})
	}
}
