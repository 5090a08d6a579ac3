package pipeline

import (
	"cmp"
	"fmt"
	"slices"
	"sort"
	"time"
)

// Session windows (window type session).
//
// A session of a group is a run of its events each less than gap after the
// one before. Its window is [first event, last event + gap), Flink's
// convention (Kafka Streams' ends at the last event): each event stands for
// [t, t+gap), and events whose windows overlap are one session. An event
// that overlaps two sessions joins them into one; the result's window_start
// is the earliest event's, window_end the latest's plus gap.
//
// A session closes when the watermark reaches its end, and its result is
// written then, once: a closed session never changes, so it is never left
// behind under an older window_start when a late event would have moved
// its start. An event is late (ignored and counted, as for other windows)
// when it would join a closed session, or when its own window [t, t+gap)
// ended at or before the watermark. allowed_lateness is therefore refused
// for sessions (config); watermark is how to wait for out-of-order events.
//
// Exactly-once. Which session an event joins depends on the sessions before
// it and on the watermark, so after a restart the messages read again must
// be judged as the first run judged them. Three rules make that so:
//   - A session is held while it is open, and after it closed until the
//     watermark is gap past its end (from then on its own window makes any
//     event that would join it late, whether it is held or not), and until
//     every message it took or turned away as late is before the first
//     message any held session depends on. minSeq covers the held sessions,
//     so the checkpoint's position is before every message a held session
//     depends on, and after every message a forgotten one does.
//   - The checkpoint's final time is, for sessions, the watermark when the
//     first event of the held sessions came (or the watermark now, when none
//     is held); a restart resumes the watermark from it.
//   - A closed session rebuilt after a restart is written again: the same
//     row, under the same window_start and group.
//
// This replays the first run exactly when the messages come in the same
// order again, as from one input stream. With several
// inputs (streams, Kafka partitions) read in a different interleaving, or
// when idle moved time on by the clock after the checkpoint was saved, an
// event near the watermark can be judged differently after a crash.

// session is a session window of one group.
type session struct {
	key         string // the group, as keyOf makes it
	group       []any
	start, last time.Time
	accs        []acc             // nil once written: a closed session does not change
	minSeq      map[string]uint64 // per input stream, the first message that fed it
	maxSeq      map[string]uint64 // per stream, the last message it took or turned away
	firstWM     time.Time         // the watermark when its first event came
	written     bool
}

func (s *session) end(gap time.Duration) time.Time { return s.last.Add(gap) }

// addToSession puts an event at t of group key into its session: a new one,
// the one its window overlaps, or the one the overlapped ones merge into.
func (w *window) addToSession(ev Event, t time.Time, key string, gvals []any, stream string, seq uint64) error {
	w.advanceTo(w.resumed) // a restart resumes the watermark from the checkpoint
	list := w.sessions[key]
	// Sessions of a group do not overlap, so both their starts and their
	// ends rise: [i, j) are those overlapping [t, t+gap).
	i := sort.Search(len(list), func(k int) bool { return list[k].end(w.gap).After(t) })
	j := i
	for j < len(list) && list[j].start.Before(t.Add(w.gap)) {
		j++
	}
	closed := false
	for _, s := range list[i:j] {
		if !s.end(w.gap).After(w.watermark) {
			// Held until the replay cannot read this event without it.
			raiseSeq(s.maxSeq, stream, seq)
			closed = true
		}
	}
	if closed || !t.Add(w.gap).After(w.watermark) {
		w.late++
		return nil
	}
	var s *session
	switch j - i {
	case 0:
		s = &session{key: key, group: gvals, start: t, last: t, accs: make([]acc, len(w.aggs)),
			minSeq: map[string]uint64{}, maxSeq: map[string]uint64{}, firstWM: w.watermark}
		for k, a := range w.aggs {
			s.accs[k] = newAcc(a.Aggregate)
		}
	case 1:
		s = list[i]
	default:
		var err error
		if s, err = w.mergeSessions(list[i:j]); err != nil {
			return err
		}
	}
	for k, a := range w.aggs {
		if err := s.accs[k].add(ev[a.Field]); err != nil {
			return fmt.Errorf("window: %s: %w", a.name, err)
		}
	}
	if t.Before(s.start) {
		s.start = t
	}
	if t.After(s.last) {
		s.last = t
	}
	lowerSeq(s.minSeq, stream, seq)
	raiseSeq(s.maxSeq, stream, seq)
	w.sessions[key] = slices.Replace(list, i, j, s)
	return nil
}

// mergeSessions makes a new session of parts (in order), changing none of
// them: an event whose values do not fit the merged one (text where the
// others were numbers) leaves them as they were.
func (w *window) mergeSessions(parts []*session) (*session, error) {
	first, lastPart := parts[0], parts[len(parts)-1]
	s := &session{key: first.key, group: first.group, start: first.start, last: lastPart.last, accs: make([]acc, len(w.aggs)),
		minSeq: map[string]uint64{}, maxSeq: map[string]uint64{}, firstWM: first.firstWM}
	for k, a := range w.aggs {
		s.accs[k] = newAcc(a.Aggregate)
		for _, p := range parts {
			if err := s.accs[k].merge(p.accs[k]); err != nil {
				return nil, fmt.Errorf("window: %s: %w", a.name, err)
			}
		}
	}
	for _, p := range parts {
		lowerSeqs(s.minSeq, p.minSeq)
		for st, q := range p.maxSeq {
			raiseSeq(s.maxSeq, st, q)
		}
		if p.firstWM.Before(s.firstWM) {
			s.firstWM = p.firstWM
		}
	}
	return s, nil
}

// emitSessions returns the results of the sessions that closed since the
// last call, forgets those nothing can reach any more, and sets final.
func (w *window) emitSessions() []Event {
	w.advanceTo(w.resumed)
	var closed []*session
	for _, list := range w.sessions {
		for _, s := range list {
			if !s.written && !s.end(w.gap).After(w.watermark) {
				closed = append(closed, s)
			}
		}
	}
	slices.SortFunc(closed, func(a, b *session) int { return cmp.Or(a.start.Compare(b.start), cmp.Compare(a.key, b.key)) })
	out := make([]Event, 0, len(closed))
	for _, s := range closed {
		row := Event{"window_start": s.start.UTC(), "window_end": s.end(w.gap).UTC()}
		for i, f := range w.c.GroupBy {
			row[f] = s.group[i]
		}
		for i, a := range w.aggs {
			row[a.name] = s.accs[i].value()
		}
		out = append(out, row)
		s.written, s.accs = true, nil
	}
	w.forgetSessions()
	w.final = w.watermark
	for _, list := range w.sessions {
		for _, s := range list {
			if s.firstWM.Before(w.final) {
				w.final = s.firstWM
			}
		}
	}
	return out
}

// forgetSessions drops the written sessions that no event can join any more
// (the watermark is gap past their end) and whose messages, taken or turned
// away, are all before the first message of every session still held.
func (w *window) forgetSessions() {
	floor := map[string]uint64{} // per stream, the first message a held session depends on
	var done []*session
	for _, list := range w.sessions {
		for _, s := range list {
			if s.written && !s.end(w.gap).Add(w.gap).After(w.watermark) {
				done = append(done, s)
			} else {
				lowerSeqs(floor, s.minSeq)
			}
		}
	}
	// One that must stay holds the position back, and may keep others.
	for changed := true; changed; {
		changed = false
		for k, s := range done {
			if s != nil && reaches(s.maxSeq, floor) {
				lowerSeqs(floor, s.minSeq)
				done[k], changed = nil, true
			}
		}
	}
	gone, groups := map[*session]bool{}, map[string]bool{}
	for _, s := range done {
		if s != nil {
			gone[s], groups[s.key] = true, true
		}
	}
	for key := range groups {
		list := slices.DeleteFunc(w.sessions[key], func(s *session) bool { return gone[s] })
		if len(list) == 0 {
			delete(w.sessions, key)
		} else {
			w.sessions[key] = list
		}
	}
}

// reaches tells whether any of seqs is at or after floor's for its stream.
func reaches(seqs, floor map[string]uint64) bool {
	for s, q := range seqs {
		if f, ok := floor[s]; ok && q >= f {
			return true
		}
	}
	return false
}

func lowerSeq(m map[string]uint64, stream string, seq uint64) {
	if q, ok := m[stream]; !ok || seq < q {
		m[stream] = seq
	}
}

func raiseSeq(m map[string]uint64, stream string, seq uint64) {
	if q, ok := m[stream]; !ok || seq > q {
		m[stream] = seq
	}
}
