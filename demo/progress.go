package demo

import (
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
)

// How often a non-terminal gets a progress line, and a retry notice at most.
const (
	historyLineEvery = 5 * time.Second
	liveLineEvery    = 30 * time.Second
	retryNoteEvery   = 10 * time.Second
)

// reporter shows Run's progress on a writer: on a terminal as mpb bars drawn
// in place, elsewhere as a line now and then. A reporter with a nil writer is
// silent.
type reporter struct {
	w        io.Writer
	tty      bool
	endpoint string

	p   *mpb.Progress // while a bar is on screen
	bar *mpb.Bar

	// Read by mpb's render goroutine, hence atomic.
	sent      atomic.Int64
	retries   atomic.Int64
	newest    atomic.Int64 // unix ms of the newest event sent
	liveSent  atomic.Int64 // sent when live traffic began
	liveBegin atomic.Int64 // unix ns

	from, to   time.Time
	expected   int64 // events the history should have
	lastLine   time.Time
	lastRetry  time.Time
	lastReason string
	live       bool
}

func newReporter(w io.Writer, endpoint string) *reporter {
	return &reporter{w: w, tty: isTerminal(w), endpoint: endpoint}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || os.Getenv("TERM") == "dumb" {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// logf prints a line, above the bar when one is on screen.
func (r *reporter) logf(format string, args ...any) {
	if r.w == nil {
		return
	}
	var w io.Writer = r.w
	if r.p != nil {
		w = r.p
	}
	fmt.Fprintf(w, format+"\n", args...)
}

func (r *reporter) historyStart(from, to time.Time, perHour int) {
	if r.w == nil {
		return
	}
	r.from, r.to, r.lastLine = from, to, time.Now()
	r.expected = int64(expectedEvents(from, to, perHour))
	r.logf("demo: sending %s of history (about %d events, %s to %s) to %s",
		to.Sub(from), r.expected, from.Format(time.DateTime), to.Format(time.DateTime+" MST"), r.endpoint)
	if !r.tty {
		return
	}
	r.p = mpb.New(mpb.WithOutput(r.w), mpb.WithWidth(40), mpb.WithAutoRefresh())
	// The bar counts events, not simulated time: they go out at a steady
	// pace while the simulated clock races through the nights.
	r.bar = r.p.New(max(r.expected, 1), mpb.BarStyle(),
		mpb.PrependDecorators(
			decor.Name("history "),
			decor.Percentage(decor.WCSyncSpace),
		),
		mpb.AppendDecorators(
			decor.Any(func(decor.Statistics) string {
				return fmt.Sprintf("%d events, up to %s", r.sent.Load(), time.UnixMilli(r.newest.Load()).UTC().Format("Mon 15:04"))
			}, decor.WCSyncSpace),
			decor.OnComplete(decor.AverageETA(decor.ET_STYLE_GO, decor.WCSyncSpace), ""),
		),
	)
}

func (r *reporter) historyDone(st Stats, err error) {
	if r.w == nil {
		return
	}
	r.update(st)
	if r.bar != nil {
		if err == nil {
			r.bar.SetTotal(-1, true)
		} else {
			r.bar.Abort(false)
		}
		r.p.Wait()
		r.p, r.bar = nil, nil
	}
	if err == nil {
		r.logf("demo: history sent: %d events in %d batches (%d retries), %s to %s",
			st.Sent, st.Batches, st.Retries, st.FirstEventTime.Format(time.DateTime), st.LastEventTime.Format(time.DateTime+" MST"))
	}
}

func (r *reporter) liveStart(rate float64, d time.Duration) {
	if r.w == nil {
		return
	}
	r.live, r.lastLine = true, time.Now()
	r.liveSent.Store(r.sent.Load())
	r.liveBegin.Store(time.Now().UnixNano())
	until := "until stopped"
	if d > 0 {
		until = "for " + d.String()
	}
	r.logf("demo: sending live traffic, %g events/s, %s", rate, until)
	if !r.tty {
		return
	}
	r.p = mpb.New(mpb.WithOutput(r.w), mpb.WithAutoRefresh())
	r.bar = r.p.New(0, mpb.NopStyle(), mpb.PrependDecorators(
		decor.Any(func(decor.Statistics) string { return r.liveStatus() }),
	))
}

func (r *reporter) liveStatus() string {
	n := r.sent.Load() - r.liveSent.Load()
	rate := ""
	if secs := time.Since(time.Unix(0, r.liveBegin.Load())).Seconds(); secs >= 1 {
		rate = fmt.Sprintf(" (%.1f/s)", float64(n)/secs)
	}
	return fmt.Sprintf("live: %d events sent%s, %d in all, %d retries", n, rate, r.sent.Load(), r.retries.Load())
}

func (r *reporter) liveDone(st Stats) {
	if r.w == nil {
		return
	}
	r.update(st)
	if r.bar != nil {
		r.bar.Abort(true)
		r.p.Wait()
		r.p, r.bar = nil, nil
	}
	r.logf("demo: stopped; %s", r.liveStatus())
}

func (r *reporter) update(st Stats) {
	r.sent.Store(st.Sent)
	r.retries.Store(st.Retries)
	r.newest.Store(st.LastEventTime.UnixMilli())
}

// progress is told about every batch sent and every live tick.
func (r *reporter) progress(st Stats) {
	if r.w == nil {
		return
	}
	r.update(st)
	if r.bar != nil {
		if !r.live {
			// The estimate may fall short; the bar completes only when
			// the history is done.
			r.bar.SetCurrent(min(st.Sent, r.expected-1))
		}
		return
	}
	every := historyLineEvery
	if r.live {
		every = liveLineEvery
	}
	if time.Since(r.lastLine) < every {
		return
	}
	r.lastLine = time.Now()
	if r.live {
		r.logf("demo: %s", r.liveStatus())
		return
	}
	done := float64(st.LastEventTime.Sub(r.from)) / float64(r.to.Sub(r.from))
	r.logf("demo: history %3.0f%% of %s: %d events sent, up to %s",
		100*min(max(done, 0), 1), r.to.Sub(r.from), st.Sent, st.LastEventTime.Format(time.DateTime))
}

// retry notes that the collector could not take a batch: each new reason,
// and a repeated one at most every retryNoteEvery so that a long outage does
// not flood the screen.
func (r *reporter) retry(reason string, wait time.Duration) {
	if r.w == nil {
		return
	}
	r.retries.Add(1)
	if reason == r.lastReason && time.Since(r.lastRetry) < retryNoteEvery {
		return
	}
	r.lastRetry, r.lastReason = time.Now(), reason
	r.logf("demo: collector at %s cannot take events (%s); retrying in %s", r.endpoint, reason, wait.Round(time.Millisecond))
}
