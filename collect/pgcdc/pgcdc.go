// Package pgcdc captures the changes of PostgreSQL tables (a postgres_cdc
// source): it follows a logical replication slot with the pgoutput plugin
// and stores every insert, update, delete and truncate of the tables, with
// before and after images, as one JSON line (sluice.Change) on a stream.
//
// Promises:
//   - Every change committed to a captured table after the slot was created
//     is stored once, in commit order, and within a transaction in the order
//     it was made (seq). Changes made while sluice is stopped are kept by the
//     slot (PostgreSQL retains the WAL) and stored when it starts again.
//   - The slot's position (the standby status update, which becomes its
//     confirmed_flush_lsn) moves past a transaction only after all of its
//     changes are stored on the bus (fsynced).
//   - After a crash, PostgreSQL sends again what was not confirmed. What the
//     stream already holds is not stored twice: the last message this source
//     stored tells how far it got (the commit LSN and seq of its last
//     change), and each message's id names the range of changes it holds, so
//     a publish retried after a lost acknowledgement is dropped by the bus.
package pgcdc

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/bus"
)

// Bus is what the source needs from the bus (*bus.Bus implements it).
type Bus interface {
	PublishTo(ctx context.Context, stream, sub string, data []byte, msgID string) (uint64, error)
	LastMsg(ctx context.Context, stream, sub string) (bus.Msg, bool, error)
	MaxPayload() int64
}

// Options configure a Source.
type Options struct {
	// Source is the config source name: letters, digits, '_' and '-' (it
	// names a bus subject).
	Source string
	// URL is the database, postgres://user:password@host:port/database.
	// Its search_path, if any, resolves unqualified table names.
	URL string
	// Tables are the tables to capture, as PostgreSQL reads names (orders,
	// billing.invoices, "Line Items").
	Tables []string
	// Stream is where the changes go; Slot and Publication are what the
	// source follows in PostgreSQL.
	Stream, Slot, Publication string
	Bus                       Bus
	// StatusInterval is the longest time between two standby status
	// updates (they also answer PostgreSQL's keepalive requests and follow
	// each stored transaction); default 10s.
	StatusInterval time.Duration
	Logger         *slog.Logger
}

// maxChunk bounds one message, so a backlog goes out in big fsync-sized
// pieces without holding much memory.
const maxChunk = 4 << 20

// queued is how many chunks may wait for the bus; while they wait, later
// transactions are gathered into one chunk (group commit).
const queued = 4

var (
	slotRe   = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)
	pubRe    = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)
	sourceRe = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
)

// Source follows one replication slot.
type Source struct {
	o     Options
	log   *slog.Logger
	cfg   *pgx.ConnConfig // a normal connection's
	pg    *pgconn.Config
	sub   string // bus sub-subject of this source's messages
	chunk int    // largest message
	types *pgtype.Map

	mu       sync.Mutex
	captured map[uint32]bool // relation ids of the tables (and their partitions)

	// neverConfirm makes the source store changes but never confirm them, as
	// if it crashed after every publish (tests).
	neverConfirm bool
}

// New checks o and returns a Source; Prepare sets up the database, Run
// follows it.
func New(o Options) (*Source, error) {
	where := fmt.Sprintf("postgres_cdc source %s", o.Source)
	switch {
	case !sourceRe.MatchString(o.Source):
		return nil, fmt.Errorf("postgres_cdc source %q: the name may hold only letters, digits, '_' and '-'", o.Source)
	case len(o.Tables) == 0:
		return nil, fmt.Errorf("%s: no tables", where)
	case o.Stream == "":
		return nil, fmt.Errorf("%s: no stream", where)
	case !slotRe.MatchString(o.Slot):
		return nil, fmt.Errorf("%s: slot name %q: use lower-case letters, digits and _, at most 63", where, o.Slot)
	case !pubRe.MatchString(o.Publication):
		return nil, fmt.Errorf("%s: publication name %q: use lower-case letters, digits and _, at most 63", where, o.Publication)
	case o.Bus == nil:
		return nil, fmt.Errorf("%s: no bus", where)
	}
	cfg, err := pgx.ParseConfig(o.URL)
	if err != nil {
		return nil, fmt.Errorf("%s: url: %w", where, err)
	}
	if cfg.ConnectTimeout == 0 {
		// An unreachable server fails the start rather than hanging it
		// (connect_timeout in the URL overrides this).
		cfg.ConnectTimeout = 15 * time.Second
	}
	if o.StatusInterval <= 0 {
		o.StatusInterval = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	s := &Source{o: o, log: o.Logger.With("source", o.Source), cfg: cfg, pg: &cfg.Config, sub: "pgcdc." + o.Source, types: pgtype.NewMap()}
	s.chunk = int(min(maxChunk, o.Bus.MaxPayload()/2))
	return s, nil
}

// where names the server for errors, without credentials.
func (s *Source) where() string {
	return fmt.Sprintf("%s:%d/%s", s.pg.Host, s.pg.Port, s.pg.Database)
}

// Run follows the slot until ctx is done, reconnecting after failures (a
// restarted server, a slot another process holds) with backoff. When it
// returns, every change it received is stored on the bus or will be sent
// again by PostgreSQL.
func (s *Source) Run(ctx context.Context) error {
	backoff := time.Second
	for {
		started := time.Now()
		err := s.stream(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if time.Since(started) > time.Minute {
			backoff = time.Second
		}
		s.log.Error("postgres_cdc: replication stopped; reconnecting", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
		if err := s.Prepare(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("postgres_cdc: the database is not ready", "err", err)
		}
	}
}

// position is where a change stands in the total order of changes.
type position struct {
	commit pglogrepl.LSN
	seq    int64
}

func (p position) after(q position) bool {
	return p.commit > q.commit || (p.commit == q.commit && p.seq > q.seq)
}

// stored reads the position of the last change this source stored.
func (s *Source) stored(ctx context.Context) (position, error) {
	m, ok, err := s.o.Bus.LastMsg(ctx, s.o.Stream, s.sub)
	if err != nil || !ok {
		return position{}, err
	}
	data := m.Data
	if n := len(data); n > 0 && data[n-1] == '\n' {
		data = data[:n-1]
	}
	for i := len(data) - 1; i >= 0; i-- {
		if data[i] == '\n' {
			data = data[i+1:]
			break
		}
	}
	var c sluice.Change
	if err := json.Unmarshal(data, &c); err != nil {
		return position{}, fmt.Errorf("last change on %s (seq %d): %w", s.o.Stream, m.Seq, err)
	}
	lsn, err := pglogrepl.ParseLSN(c.CommitLSN)
	if err != nil {
		return position{}, fmt.Errorf("last change on %s (seq %d): commit_lsn: %w", s.o.Stream, m.Seq, err)
	}
	return position{lsn, c.Seq}, nil
}

// chunk is a piece of the stream for the publisher: the JSON lines of
// changes from first to last, and, when it completes a transaction, the
// end of its commit, which may be confirmed once the lines are stored.
type chunk struct {
	data        []byte
	first, last position
	changes     int
	end         pglogrepl.LSN
}

// stream follows the slot over one replication connection until an error
// or ctx ends it.
func (s *Source) stream(ctx context.Context) error {
	s.mu.Lock()
	prepared := s.captured != nil
	s.mu.Unlock()
	if !prepared {
		if err := s.Prepare(ctx); err != nil {
			return err
		}
	}
	from, err := s.stored(ctx)
	if err != nil {
		return err
	}
	cfg := s.pg.Copy()
	cfg.RuntimeParams["replication"] = "database"
	cfg.RuntimeParams["application_name"] = "sluice " + s.o.Source
	for k, v := range sessionParams {
		cfg.RuntimeParams[k] = v
	}
	// The stream is many small messages: read them in large pieces rather
	// than a system call per 8 KiB.
	cfg.BuildFrontend = func(r io.Reader, w io.Writer) *pgproto3.Frontend {
		return pgproto3.NewFrontend(bufio.NewReaderSize(r, 256<<10), w)
	}
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("connect to PostgreSQL at %s: %w", s.where(), err)
	}
	defer conn.Close(context.Background())
	// 0: from the slot's confirmed position.
	err = pglogrepl.StartReplication(ctx, conn, s.o.Slot, 0, pglogrepl.StartReplicationOptions{
		Mode:       pglogrepl.LogicalReplication,
		PluginArgs: []string{"proto_version '1'", fmt.Sprintf("publication_names '%s'", s.o.Publication)},
	})
	if err != nil {
		return fmt.Errorf("start replication from slot %s: %w", s.o.Slot, err)
	}
	s.log.Info("postgres_cdc: following the slot", "slot", s.o.Slot, "stored_up_to", from.commit.String(), "stored_seq", from.seq)

	r := &receiver{s: s, conn: conn, from: from, relations: map[uint32]*relation{}, out: make(chan *chunk, queued), free: make(chan []byte, queued+1)}
	s.mu.Lock()
	r.captured = s.captured
	s.mu.Unlock()
	pubDone := make(chan error, 1)
	pubCtx, stopPub := context.WithCancel(context.WithoutCancel(ctx))
	defer stopPub()
	go func() { pubDone <- s.publish(pubCtx, r.out, r) }()

	err = r.run(ctx)
	// What was handed to the publisher is stored (or given up on after a
	// while, when the bus is down at shutdown); then the position it
	// reached is confirmed, so a clean stop leaves nothing to send again.
	close(r.out)
	drain := time.AfterFunc(10*time.Second, stopPub)
	pubErr := <-pubDone
	drain.Stop()
	if pubErr == nil {
		r.sendStatus(false)
	}
	return errors.Join(err, pubErr)
}

// publish stores the chunks in order and confirms each transaction once its
// last chunk is stored.
func (s *Source) publish(ctx context.Context, in <-chan *chunk, r *receiver) error {
	for c := range in {
		if c.changes > 0 {
			id := fmt.Sprintf("%s.%s.%d-%s.%d", s.sub, c.first.commit, c.first.seq, c.last.commit, c.last.seq)
			if err := s.publishRetrying(ctx, c.data, id); err != nil {
				return err
			}
			cdcChanges.WithLabelValues(s.o.Source).Add(float64(c.changes))
		}
		select {
		case r.free <- c.data[:0]:
		default:
		}
		if c.end != 0 && !s.neverConfirm {
			r.confirmed.Store(uint64(c.end))
			r.wake()
		}
	}
	return nil
}

// publishRetrying stores one message, retrying the same bytes under the
// same id until it is stored or ctx is done.
func (s *Source) publishRetrying(ctx context.Context, data []byte, msgID string) error {
	backoff := 100 * time.Millisecond
	for {
		_, err := s.o.Bus.PublishTo(ctx, s.o.Stream, s.sub, data, msgID)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("store changes on %s: %w", s.o.Stream, err)
		}
		s.log.Warn("postgres_cdc: publish failed; retrying", "msg_id", msgID, "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("store changes on %s: %w", s.o.Stream, err)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// receiver reads the replication stream and turns transactions into
// chunks. It alone uses the connection: it also sends the status updates.
type receiver struct {
	s         *Source
	conn      *pgconn.PgConn
	from      position // changes up to here are stored already
	captured  map[uint32]bool
	relations map[uint32]*relation
	out       chan *chunk
	free      chan []byte // buffers of stored chunks, for new ones

	// The transaction being received.
	inTx   bool
	commit pglogrepl.LSN
	seq    int64
	txHead []byte // `","commit_lsn":"…","commit_time":"…","xid":…,`
	cur    *chunk // lines not yet handed over

	handed    pglogrepl.LSN // end of the last commit handed over
	confirmed atomic.Uint64 // end of the last commit stored (by the publisher)
	serverEnd pglogrepl.LSN // the server's WAL end, from its last message
	sentLSN   pglogrepl.LSN
	sentAt    time.Time

	msg rowMessage // the row message being handled, reused

	wakeMu  sync.Mutex
	waitEnd context.CancelFunc // ends the current wait for a message
	woken   bool
	scratch struct{ toast, large []string }
}

// wake makes the receiver look at the confirmed position now rather than
// when its current wait ends.
func (r *receiver) wake() {
	r.wakeMu.Lock()
	defer r.wakeMu.Unlock()
	if r.waitEnd != nil {
		r.waitEnd()
	} else {
		r.woken = true
	}
}

// waitContext is what the receiver waits for messages with: it ends at the
// next status update, when ctx ends or when the publisher wakes it.
func (r *receiver) waitContext(ctx context.Context) context.Context {
	r.wakeMu.Lock()
	defer r.wakeMu.Unlock()
	next := r.sentAt.Add(r.s.o.StatusInterval)
	if pglogrepl.LSN(r.confirmed.Load()) != r.sentLSN {
		next = r.sentAt.Add(statusEvery)
	}
	wctx, cancel := context.WithDeadline(ctx, next)
	if r.woken {
		cancel()
		r.woken = false
	}
	r.waitEnd = cancel
	return wctx
}

func (r *receiver) run(ctx context.Context) error {
	r.sentAt = time.Now()
	r.sentLSN = pglogrepl.LSN(r.confirmed.Load())
	var wctx context.Context
	for {
		if ctx.Err() != nil {
			return nil
		}
		r.offer()
		if err := r.maybeSendStatus(); err != nil {
			return err
		}
		if wctx == nil || wctx.Err() != nil {
			wctx = r.waitContext(ctx)
		}
		msg, err := r.conn.ReceiveMessage(wctx)
		if err != nil {
			if wctx.Err() != nil && !r.conn.IsClosed() {
				continue // a wait ended: the loop sends what is due
			}
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("receive from PostgreSQL: %w", err)
		}
		switch msg := msg.(type) {
		case *pgproto3.CopyData:
			if err := r.copyData(ctx, msg.Data); err != nil {
				return err
			}
		case *pgproto3.ErrorResponse:
			return fmt.Errorf("replication: %w", pgconn.ErrorResponseToPgError(msg))
		case *pgproto3.CopyDone:
			return errors.New("replication: the server ended the stream")
		}
	}
}

func (r *receiver) copyData(ctx context.Context, data []byte) error {
	if len(data) == 0 {
		return nil
	}
	switch data[0] {
	case pglogrepl.PrimaryKeepaliveMessageByteID:
		k, err := pglogrepl.ParsePrimaryKeepaliveMessage(data[1:])
		if err != nil {
			return fmt.Errorf("replication: %w", err)
		}
		r.serverEnd = max(r.serverEnd, k.ServerWALEnd)
		r.idleConfirm(k.ServerWALEnd)
		if k.ReplyRequested {
			return r.sendStatus(false)
		}
	case pglogrepl.XLogDataByteID:
		x, err := pglogrepl.ParseXLogData(data[1:])
		if err != nil {
			return fmt.Errorf("replication: %w", err)
		}
		r.serverEnd = max(r.serverEnd, x.ServerWALEnd)
		return r.change(ctx, x.WALStart, x.WALData)
	}
	return nil
}

// idleConfirm confirms the position of a keepalive (how far the server has
// decoded and sent) when nothing is in flight: WAL that held no change of
// the tables (other tables' work) is then released rather than kept by the
// slot until the tables' next change. A transaction that commits later has
// a later commit, so it is not skipped.
func (r *receiver) idleConfirm(sent pglogrepl.LSN) {
	if r.inTx || r.cur != nil || r.s.neverConfirm {
		return
	}
	if c := pglogrepl.LSN(r.confirmed.Load()); c == r.handed && sent > c {
		r.confirmed.CompareAndSwap(uint64(c), uint64(sent))
		r.handed = sent
	}
}

// change handles one pgoutput message.
func (r *receiver) change(ctx context.Context, lsn pglogrepl.LSN, data []byte) error {
	if len(data) == 0 {
		return nil
	}
	if op, ok := rowOps[data[0]]; ok {
		if err := decodeRow(data, &r.msg); err != nil {
			return fmt.Errorf("replication: decode %q message at %s: %w", data[0], lsn, err)
		}
		return r.row(ctx, lsn, op, &r.msg)
	}
	m, err := pglogrepl.Parse(data)
	if err != nil {
		return fmt.Errorf("replication: decode %q message at %s: %w", data[0], lsn, err)
	}
	switch m := m.(type) {
	case *pglogrepl.BeginMessage:
		r.inTx, r.commit, r.seq = true, m.FinalLSN, 0
		r.txHead = append(r.txHead[:0], `","commit_lsn":"`...)
		r.txHead = appendLSN(r.txHead, m.FinalLSN)
		r.txHead = append(r.txHead, `","commit_time":"`...)
		r.txHead = m.CommitTime.UTC().AppendFormat(r.txHead, timeLayout)
		r.txHead = append(r.txHead, `","xid":`...)
		r.txHead = strconv.AppendUint(r.txHead, uint64(m.Xid), 10)
		r.txHead = append(r.txHead, ',')
	case *pglogrepl.CommitMessage:
		c := r.current()
		c.end = m.TransactionEndLSN
		r.inTx = false
		r.handed = m.TransactionEndLSN
		if len(c.data) >= r.s.chunk/2 {
			return r.hand(ctx)
		}
		r.offer()
	case *pglogrepl.RelationMessage:
		r.relations[m.RelationID] = newRelation(m, r.captured[m.RelationID], r.s.types)
	case *pglogrepl.TruncateMessage:
		for _, id := range m.RelationIDs {
			r.msg = rowMessage{rel: id}
			if err := r.row(ctx, lsn, sluice.OpTruncate, &r.msg); err != nil {
				return err
			}
		}
	}
	return nil
}

var rowOps = map[byte]string{'I': sluice.OpInsert, 'U': sluice.OpUpdate, 'D': sluice.OpDelete}

// row appends one change of a captured table to the current chunk.
func (r *receiver) row(ctx context.Context, lsn pglogrepl.LSN, op string, m *rowMessage) error {
	rl, ok := r.relations[m.rel]
	if !ok {
		return fmt.Errorf("replication: a change of relation %d at %s before its description", m.rel, lsn)
	}
	if !rl.captured {
		return nil // in the publication, but not a table of this source
	}
	r.seq++
	pos := position{r.commit, r.seq}
	if !pos.after(r.from) {
		return nil // stored before a restart
	}
	c := r.current()
	start := len(c.data)
	line, err := r.line(c.data, lsn, rl, op, m, r.s.chunk)
	if err == nil && len(line)-start > r.s.chunk {
		// Too big for a message: large values are left out, then all.
		line, err = r.line(line[:start], lsn, rl, op, m, r.s.chunk/16)
		if err == nil && len(line)-start > r.s.chunk {
			line, err = r.line(line[:start], lsn, rl, op, m, -1)
		}
	}
	if err != nil {
		return fmt.Errorf("replication: change at %s: %w", lsn, err)
	}
	if c.changes > 0 && len(line) > r.s.chunk {
		// The line goes to the next chunk.
		c.data = line[:start]
		if err := r.hand(ctx); err != nil {
			return err
		}
		c = r.current()
		c.data = append(c.data, line[start:]...)
	} else {
		c.data = line
	}
	if c.changes == 0 {
		c.first = pos
	}
	c.last = pos
	c.changes++
	return nil
}

// line appends one change as a JSON line; values longer than maxValue are
// left out (-1: every value).
func (r *receiver) line(dst []byte, lsn pglogrepl.LSN, rl *relation, op string, m *rowMessage, maxValue int) ([]byte, error) {
	toast, large := r.scratch.toast[:0], r.scratch.large[:0]
	dst = append(dst, `{"lsn":"`...)
	dst = appendLSN(dst, lsn)
	dst = append(dst, r.txHead...)
	dst = append(dst, rl.head...)
	dst = append(dst, `"op":"`...)
	dst = append(dst, op...)
	dst = append(dst, `","seq":`...)
	dst = strconv.AppendInt(dst, r.seq, 10)
	dst = append(dst, `,"before":`...)
	var err error
	var full *tuple // a whole before image, for unchanged TOAST values
	var discard []string
	switch {
	case m.hasOld && m.oldKind == 'O':
		full = &m.old
		dst, err = rl.appendImage(dst, &m.old, wholeRow, nil, maxValue, &discard, &large)
	case m.hasOld:
		dst, err = rl.appendImage(dst, &m.old, keyOnly, nil, maxValue, &discard, &large)
	case op == sluice.OpUpdate && rl.hasKey:
		// The key did not change: the new row's is the old one's.
		dst, err = rl.appendImage(dst, &m.new, keyOnly, nil, maxValue, &discard, &large)
	default:
		dst = append(dst, "null"...)
	}
	if err != nil {
		return dst, err
	}
	dst = append(dst, `,"after":`...)
	if m.hasNew {
		if dst, err = rl.appendImage(dst, &m.new, wholeRow, full, maxValue, &toast, &large); err != nil {
			return dst, err
		}
	} else {
		dst = append(dst, "null"...)
	}
	for _, l := range []struct {
		key   string
		names []string
	}{{"unchanged_toast", toast}, {"too_large", large}} {
		if len(l.names) == 0 {
			continue
		}
		dst = append(dst, `,"`...)
		dst = append(dst, l.key...)
		dst = append(dst, `":`...)
		b, _ := json.Marshal(l.names)
		dst = append(dst, b...)
	}
	r.scratch.toast, r.scratch.large = toast, large
	return append(dst, "}\n"...), nil
}

func (r *receiver) current() *chunk {
	if r.cur == nil {
		select {
		case b := <-r.free:
			r.cur = &chunk{data: b}
		default:
			r.cur = &chunk{data: make([]byte, 0, 64<<10)}
		}
	}
	return r.cur
}

// offer hands the current chunk over if it ends a transaction and the
// publisher has room; else the next transactions join it.
func (r *receiver) offer() {
	if r.cur == nil || r.inTx || r.cur.end == 0 {
		return
	}
	select {
	case r.out <- r.cur:
		r.cur = nil
	default:
	}
}

// hand hands the current chunk over, waiting for room. While it waits it
// keeps answering the server, whose keepalive requests must not go
// unanswered for longer than its wal_sender_timeout.
func (r *receiver) hand(ctx context.Context) error {
	t := time.NewTicker(r.s.o.StatusInterval)
	defer t.Stop()
	for {
		select {
		case r.out <- r.cur:
			r.cur = nil
			return nil
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := r.sendStatus(false); err != nil {
				return err
			}
		}
	}
}

// statusEvery is the shortest time between two status updates that follow
// stored transactions.
const statusEvery = 100 * time.Millisecond

// maybeSendStatus sends a status update when the confirmed position moved
// (at most every statusEvery) or the interval passed.
func (r *receiver) maybeSendStatus() error {
	c := pglogrepl.LSN(r.confirmed.Load())
	since := time.Since(r.sentAt)
	if (c != r.sentLSN && since >= statusEvery) || since >= r.s.o.StatusInterval {
		return r.sendStatus(false)
	}
	return nil
}

// sendStatus reports the confirmed position: PostgreSQL may recycle the
// WAL before it and will not send those transactions again.
func (r *receiver) sendStatus(reply bool) error {
	c := pglogrepl.LSN(r.confirmed.Load())
	err := pglogrepl.SendStandbyStatusUpdate(context.Background(), r.conn, pglogrepl.StandbyStatusUpdate{
		WALWritePosition: c, WALFlushPosition: c, WALApplyPosition: c, ReplyRequested: reply,
	})
	if err != nil {
		return fmt.Errorf("send status update: %w", err)
	}
	r.sentLSN, r.sentAt = c, time.Now()
	if r.serverEnd > c {
		cdcLag.WithLabelValues(r.s.o.Source).Set(float64(r.serverEnd - c))
	} else {
		cdcLag.WithLabelValues(r.s.o.Source).Set(0)
	}
	return nil
}

var (
	cdcChanges = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_cdc_changes_total",
		Help: "Changes a postgres_cdc source stored on its stream.",
	}, []string{"source"})
	cdcLag = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "sluice_cdc_lag_bytes",
		Help: "Bytes of WAL between the server's end and what a postgres_cdc source has confirmed (what the slot retains for it).",
	}, []string{"source"})
)
