// Command pipeline compares a sluice stream pipeline with Benthos on one
// workload, in one run (docs/benchmarks.md, "Stream pipelines vs Benthos"):
// N JSON events (package demo's web-shop events) in an NDJSON file, a filter
// keeping the events about a product (product_view, add_to_cart,
// purchase_item: a third of them), a computed field total = price * quantity
// (quantity 1 when absent), NDJSON out to a file.
//
//   - Benthos: benchmarks/benthos (its own module) reads the file, runs a
//     bloblang mapping, writes the file, and exits.
//   - sluice: `sluice up` with a pipeline that reads the file itself
//     (from: {file: {paths: [...], parse: json}}), filters and sets, and
//     writes {file: …}: the same work as Benthos's. The run ends when the
//     output file holds every expected line; sluice is then stopped.
//   - sluice-bus: `sluice up` with a file source (parse: json) onto a
//     stream, through the embedded bus (raw, enrich, the stream, each
//     stored with fsync, and archived to the lake), and the pipeline from
//     that stream.
//
// For each it reports events/s (input events over the wall time from start
// to the last output line), CPU seconds (user+system of the process until
// then) and peak RSS, and it checks that the output holds exactly the
// expected events with the expected totals. Use run.sh next to it.
//
// Peak RSS is the process's own high-water mark (VmHWM in
// /proc/PID/status), read every 10 ms until it exits, not the rusage of
// wait4: os/exec starts a child with vfork (CLONE_VM), so the kernel
// counts this runner's own RSS (the expected totals of a million events,
// ~90 MB) in the child's ru_maxrss, which made Benthos's peak look like
// 87 MB instead of ~32 MB. The peak of anonymous memory (RssAnon: heap,
// stacks, C allocations; not the mapped binary) is reported beside it.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sluice-data/sluice/demo"
)

func main() {
	events := flag.Int("events", 1_000_000, "events to generate")
	sluiceBin := flag.String("sluice", "./bin/sluice", "the sluice binary")
	benthosBin := flag.String("benthos", "./bin/benthos-bench", "the Benthos binary built from benchmarks/benthos")
	dir := flag.String("dir", "", "work directory (default: a new temporary directory, removed at the end)")
	profile := flag.String("profile", "", "write a CPU profile of sluice (from /debug/pprof/profile) to this file (sluice-bus's: sluice-bus.FILE)")
	profileFor := flag.Duration("profile-for", 10*time.Second, "length of the CPU profile")
	only := flag.String("only", "", "run only benthos, sluice (the file input) or sluice-bus (a file source and the bus); several with commas")
	flag.Parse()
	if err := run(*events, *sluiceBin, *benthosBin, *dir, *profile, *profileFor, *only); err != nil {
		fmt.Fprintln(os.Stderr, "pipeline bench:", err)
		os.Exit(1)
	}
}

func run(n int, sluiceBin, benthosBin, dir, profile string, profileFor time.Duration, only string) error {
	runs := func(name string) bool { return only == "" || slices.Contains(strings.Split(only, ","), name) }
	if dir == "" {
		d, err := os.MkdirTemp("", "sluice-vs-benthos-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	// The floor: each binary printing its help and exiting, before this
	// runner holds anything (see startPeak).
	for _, b := range []struct{ name, bin, arg string }{{"benthos", benthosBin, "-h"}, {"sluice", sluiceBin, "--help"}} {
		if runs(b.name) || (b.name == "sluice" && runs("sluice-bus")) {
			kib, err := startPeak(b.bin, b.arg)
			if err != nil {
				return fmt.Errorf("%s %s: %w", b.bin, b.arg, err)
			}
			fmt.Fprintf(os.Stderr, "%s %s: peak RSS %.1f MiB (the binary's start-up alone)\n", b.bin, b.arg, float64(kib)/1024)
		}
	}
	in := filepath.Join(dir, "in", "events.ndjson")
	fmt.Fprintf(os.Stderr, "generating %d events into %s\n", n, in)
	want, size, err := generate(in, n)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "%d bytes, %d events pass the filter\n", size, len(want))

	var results []result
	if runs("benthos") {
		out := filepath.Join(dir, "benthos-out.ndjson")
		r, err := runBenthos(benthosBin, in, out)
		if err != nil {
			return fmt.Errorf("benthos: %w", err)
		}
		if err := check(out, want, false); err != nil {
			return fmt.Errorf("benthos output: %w", err)
		}
		results = append(results, r)
	}
	for _, name := range []string{"sluice", "sluice-bus"} {
		if !runs(name) {
			continue
		}
		out := filepath.Join(dir, name+"-out.ndjson")
		r, err := runSluice(name, sluiceBin, dir, in, out, len(want), profile, profileFor)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if err := check(out, want, name == "sluice-bus"); err != nil {
			return fmt.Errorf("%s output: %w", name, err)
		}
		results = append(results, r)
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "\tevents\tkept\twall s\tevents/s\tCPU s\tCPU µs/event\tpeak RSS MiB\tpeak anon MiB\t\n")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.2f\t%.0f\t%.2f\t%.2f\t%.1f\t%.1f\t\n", r.name, n, len(want),
			r.wall.Seconds(), float64(n)/r.wall.Seconds(), r.cpu.Seconds(),
			float64(r.cpu.Microseconds())/float64(n), float64(r.mem.hwm)/1024, float64(r.mem.anon)/1024)
	}
	return tw.Flush()
}

// result is one tool's run.
type result struct {
	name string
	wall time.Duration
	cpu  time.Duration // user + system
	mem  peaks
}

// peaks are a process's memory high-water marks, in KiB.
type peaks struct {
	hwm  int64 // VmHWM: peak RSS
	anon int64 // the largest RssAnon seen
}

// watchMemory reads pid's memory figures every 10 ms until stop is closed,
// then sends the peaks. VmHWM is kept by the kernel, so only growth in the
// last 10 ms before the process exits can be missed; RssAnon is sampled.
func watchMemory(pid int, stop <-chan struct{}) <-chan peaks {
	out := make(chan peaks, 1)
	go func() {
		var p peaks
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			if hwm, anon, err := procMemory(pid); err == nil {
				p.hwm = max(p.hwm, hwm)
				p.anon = max(p.anon, anon)
			}
			select {
			case <-stop:
				out <- p
				return
			case <-tick.C:
			}
		}
	}()
	return out
}

// startPeak is the peak RSS (KiB) of bin run with arg (its help: it starts
// and exits), from the page cache's cold state. It is wait4's ru_maxrss,
// which counts this runner's RSS while the child shares it (vfork, until
// exec): taken before the events are generated, that is ~10 MiB, below
// either binary's figure.
func startPeak(bin, arg string) (int64, error) {
	if err := dropCached(bin); err != nil {
		return 0, err
	}
	cmd := exec.Command(bin, arg)
	if err := cmd.Run(); err != nil {
		var exit *exec.ExitError
		if !errors.As(err, &exit) { // Go's flag package exits 0 on -h, some 2
			return 0, err
		}
	}
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return 0, errors.New("no rusage")
	}
	return ru.Maxrss, nil
}

// dropCached asks the kernel to drop a binary's pages from the page cache,
// so that every run maps its code from the same state. A binary just written
// by the linker sits in the cache as large folios, and Linux (6.18 here)
// maps a whole folio into a process at its first touch: the same sluice
// binary peaked ~20 MiB higher right after a build than after its pages
// were read back from disk. Pages another process has mapped stay.
func dropCached(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		return fmt.Errorf("%s: fadvise: %w", path, err)
	}
	return nil
}

// procMemory reads VmHWM and RssAnon (KiB) from /proc/PID/status.
func procMemory(pid int) (hwm, anon int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		name, value, ok := strings.Cut(line, ":")
		if !ok || (name != "VmHWM" && name != "RssAnon") {
			continue
		}
		kib, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc/%d/status: %s: %w", pid, name, err)
		}
		if name == "VmHWM" {
			hwm = kib
		} else {
			anon = kib
		}
	}
	if hwm == 0 {
		return 0, 0, fmt.Errorf("/proc/%d/status: no VmHWM", pid)
	}
	return hwm, anon, nil
}

// generate writes n demo events to path, one JSON object a line, and
// returns the totals the pipelines must compute, by event_id.
func generate(path string, n int) (map[string]float64, int64, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, 0, err
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	want := map[string]float64{}
	done := errors.New("done")
	count := 0
	// A fixed week: the events, their ids and times are the same every run.
	from := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	err = demo.NewGenerator(1).History(from, from.Add(7*24*time.Hour), n/100, func(ev map[string]any) error {
		if count == n {
			return done
		}
		line, err := json.Marshal(ev)
		if err != nil {
			return err
		}
		w.Write(line)
		w.WriteByte('\n')
		count++
		if kept(ev["event"]) {
			qty := 1.0
			if q, ok := ev["quantity"]; ok {
				qty = number(q)
			}
			want[ev["event_id"].(string)] = number(ev["price"]) * qty
		}
		return nil
	})
	if err != nil && !errors.Is(err, done) {
		return nil, 0, err
	}
	if count < n {
		return nil, 0, fmt.Errorf("the generator made %d events, not %d", count, n)
	}
	if err := w.Flush(); err != nil {
		return nil, 0, err
	}
	st, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	return want, st.Size(), f.Sync()
}

// kept is the filter of both pipelines.
func kept(event any) bool {
	return event == "product_view" || event == "add_to_cart" || event == "purchase_item"
}

// number is a JSON number as float64, as both expression languages compute
// price * quantity (an integer times a float is a float).
func number(v any) float64 {
	switch x := v.(type) {
	case int:
		return float64(x)
	case int64:
		return float64(x)
	case float64:
		return x
	}
	return 0
}

// check reads an output file and compares it with want: every kept event
// once, with its total. Sluice's lines hold the source's fields under
// "fields" (the logs columns of a file source); Benthos's hold them at the
// top.
func check(path string, want map[string]float64, nested bool) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	seen := make(map[string]bool, len(want))
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for line := 1; sc.Scan(); line++ {
		var ev struct {
			EventID string  `json:"event_id"`
			Total   float64 `json:"total"`
			Fields  struct {
				EventID string `json:"event_id"`
			} `json:"fields"`
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return fmt.Errorf("line %d: %w", line, err)
		}
		id := ev.EventID
		if nested {
			id = ev.Fields.EventID
		}
		total, ok := want[id]
		switch {
		case !ok:
			return fmt.Errorf("line %d: event %q should not pass the filter", line, id)
		case seen[id]:
			return fmt.Errorf("line %d: event %s written twice", line, id)
		case ev.Total != total:
			return fmt.Errorf("line %d: event %s: total %v, want %v", line, id, ev.Total, total)
		}
		seen[id] = true
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if len(seen) != len(want) {
		return fmt.Errorf("%d events, want %d", len(seen), len(want))
	}
	return nil
}

func runBenthos(bin, in, out string) (result, error) {
	os.Remove(out)
	if err := dropCached(bin); err != nil {
		return result{}, err
	}
	cmd := exec.Command(bin, "-in", in, "-out", out)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return result{}, err
	}
	stop := make(chan struct{})
	mem := watchMemory(cmd.Process.Pid, stop)
	err := cmd.Wait()
	wall := time.Since(start)
	close(stop)
	if err != nil {
		return result{}, err
	}
	return result{name: "benthos", wall: wall, cpu: cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(), mem: <-mem}, nil
}

// sluiceConfig is the config of the sluice run: a pipeline reads the events
// file, filters, sets and writes the output file.
const sluiceConfig = `data_dir: %[1]s
http: {collector: "%[2]s", api: "%[3]s"}
pipelines:
  bench:
    from: {file: {paths: [%[4]s], parse: json}}
    steps:
      - filter: 'event in ["product_view", "add_to_cart", "purchase_item"]'
      - set: {total: 'price * (quantity ?? 1)'}
    to: {file: %[5]s}
`

// sluiceBusConfig is the config of the sluice-bus run: the events file
// tailed onto stream bench_in, one pipeline from it to the output file.
const sluiceBusConfig = `data_dir: %[1]s
http: {collector: "%[2]s", api: "%[3]s"}
sources:
  bench:
    type: file
    paths: [%[4]s]
    parse: json
    stream: bench_in
pipelines:
  bench:
    from: bench_in
    steps:
      - filter: 'fields.event in ["product_view", "add_to_cart", "purchase_item"]'
      - set: {total: 'fields.price * (fields.quantity ?? 1)'}
    to: {file: %[5]s}
`

func runSluice(name, bin, dir, in, out string, lines int, profile string, profileFor time.Duration) (result, error) {
	os.Remove(out)
	data := filepath.Join(dir, "sluice-data")
	if err := os.RemoveAll(data); err != nil {
		return result{}, err
	}
	collector, err := freeAddr()
	if err != nil {
		return result{}, err
	}
	api, err := freeAddr()
	if err != nil {
		return result{}, err
	}
	cfgPath := filepath.Join(dir, name+".yaml")
	tmpl := sluiceConfig
	if name == "sluice-bus" {
		tmpl = sluiceBusConfig
	}
	cfg := fmt.Sprintf(tmpl, strconv.Quote(data), collector, api, strconv.Quote(in), strconv.Quote(out))
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return result{}, err
	}
	logf, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		return result{}, err
	}
	defer logf.Close()
	if err := dropCached(bin); err != nil {
		return result{}, err
	}
	cmd := exec.Command(bin, "up", "-c", cfgPath, "--log-level", "warn")
	cmd.Stdout, cmd.Stderr = logf, logf
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return result{}, err
	}
	exited := make(chan error, 1)
	stopWatch := make(chan struct{})
	mem := watchMemory(cmd.Process.Pid, stopWatch)
	go func() {
		err := cmd.Wait()
		close(stopWatch)
		exited <- err
	}()
	profiled := make(chan error, 1)
	if profile != "" {
		// One profile per sluice run: sluice.prof becomes sluice-bus.sluice.prof for the other.
		path := profile
		if name != "sluice" {
			path = filepath.Join(filepath.Dir(profile), name+"."+filepath.Base(profile))
		}
		go func() { profiled <- fetchProfile("http://"+api, path, profileFor) }()
	} else {
		profiled <- nil
	}

	// Poll the output for its last line, reading only what was appended.
	f, err := openWhenThere(out, exited)
	if err != nil {
		return result{}, err
	}
	defer f.Close()
	got := 0
	buf := make([]byte, 1<<20)
	var cpu time.Duration
	for got < lines {
		n, err := f.Read(buf)
		got += bytes.Count(buf[:n], []byte{'\n'})
		if got >= lines {
			cpu, _ = procCPU(cmd.Process.Pid)
			break
		}
		if err == io.EOF {
			select {
			case err := <-exited:
				return result{}, fmt.Errorf("exited with %v after %d of %d lines (log: %s)", err, got, lines, logf.Name())
			case <-time.After(20 * time.Millisecond):
			}
		} else if err != nil {
			return result{}, err
		}
	}
	wall := time.Since(start)
	if err := <-profiled; err != nil {
		fmt.Fprintln(os.Stderr, "profile:", err)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(time.Minute):
		cmd.Process.Kill()
		<-exited
		return result{}, fmt.Errorf("did not stop within a minute of SIGTERM")
	}
	return result{name: name, wall: wall, cpu: cpu, mem: <-mem}, nil
}

func openWhenThere(path string, exited <-chan error) (*os.File, error) {
	for {
		f, err := os.Open(path)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		select {
		case err := <-exited:
			return nil, fmt.Errorf("exited with %v before writing any output", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// procCPU is the user+system CPU time a running process used so far.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name (in parentheses, which may hold spaces):
	// utime and stime are the 12th and 13th, in clock ticks (USER_HZ, 100
	// on Linux).
	rest := b[bytes.LastIndexByte(b, ')')+2:]
	fs := strings.Fields(string(rest))
	if len(fs) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(fs))
	}
	ut, err1 := strconv.ParseInt(fs[11], 10, 64)
	st, err2 := strconv.ParseInt(fs[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return time.Duration(ut+st) * 10 * time.Millisecond, nil
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// fetchProfile takes a CPU profile of sluice once its API answers.
func fetchProfile(api, path string, d time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), d+30*time.Second)
	defer cancel()
	for {
		resp, err := http.Get(api + "/healthz")
		if err == nil {
			resp.Body.Close()
			break
		}
		if ctx.Err() != nil {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", api, int(d.Seconds())), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("%s: %s", resp.Status, msg)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
