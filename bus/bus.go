// Package bus is the durable message bus between the stages: NATS JetStream,
// embedded in the sluice process (file store in the data dir) or an external
// NATS server or cluster (`bus.url: nats://…`).
//
// Promises:
//   - Publish returns only after the message is stored. The embedded server
//     fsyncs every write before it acknowledges (SyncAlways); an external
//     server must be configured with `jetstream { sync_interval: always }` for
//     the same guarantee (docs/operations.md).
//   - Consume delivers a stream through a durable consumer with explicit
//     acks, in order while handlers succeed; a batch whose handler fails is
//     redelivered after the messages already pulled behind it.
//     ConsumePipelined lets a stage store one batch's output while it works
//     on the next; a batch is acknowledged only once its output is stored. Delivery is
//     at-least-once, so stages make their output idempotent (message ids, file
//     names by sequence range) and must not depend on order across a failure.
//   - Read follows a stream from a sequence the caller keeps itself.
package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// StreamConfig is the retention of one stream.
type StreamConfig struct {
	Retention time.Duration
	MaxBytes  int64
}

// Options say which bus to open.
type Options struct {
	// URL is "embedded" (or empty) for the in-process server, else a NATS URL.
	URL string
	// Dir is where the embedded server keeps its file store.
	Dir string
	// Streams to create or update, by name.
	Streams map[string]StreamConfig
	// MaxPayload is the largest message the embedded server accepts.
	MaxPayload int32
	Logger     *slog.Logger
}

// DefaultMaxPayload is the embedded server's message size limit. Collector
// frames are cut well below it.
const DefaultMaxPayload = 8 << 20

// pullBytes bounds what one consumer has in flight to this process, so big
// messages (collector frames are up to MaxPayload/2) can't flood it.
const pullBytes = 16 << 20

// DuplicateWindow is how long JetStream remembers message ids, so a stage that
// republishes after a crash does not store the same output twice.
const DuplicateWindow = 5 * time.Minute

// Bus is an open connection to the bus (and the embedded server, if any).
type Bus struct {
	srv *server.Server
	nc  *nats.Conn
	js  jetstream.JetStream
	log *slog.Logger
	kv  jetstream.KeyValue

	closing atomic.Bool // Close was called: disconnects are expected
	// dropped counts deliveries to durable consumers that the NATS client
	// dropped (see pump).
	dropped atomic.Uint64
}

// Open starts the embedded server (or connects to an external one) and
// creates the streams.
func Open(ctx context.Context, o Options) (*Bus, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	b := &Bus{log: o.Logger}
	var err error
	connOpts := []nats.Option{
		nats.Name("sluice"), nats.MaxReconnects(-1),
		// While disconnected, fail publishes at once (the collector answers
		// 503) instead of buffering them where an ack can never come from.
		nats.ReconnectBufSize(-1),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subj := ""
			if sub != nil {
				subj = sub.Subject
			}
			b.log.Error("bus: connection error", "subject", subj, "err", err)
		}),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if !b.closing.Load() {
				b.log.Warn("bus: disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(*nats.Conn) { b.log.Info("bus: reconnected") }),
	}
	if o.URL == "" || o.URL == "embedded" {
		if err := b.startEmbedded(o); err != nil {
			return nil, err
		}
		b.nc, err = nats.Connect("", append(connOpts, nats.InProcessServer(b.srv))...)
	} else {
		if _, perr := url.Parse(o.URL); perr != nil {
			return nil, fmt.Errorf("bus url %q: %w", o.URL, perr)
		}
		b.nc, err = nats.Connect(o.URL, connOpts...)
	}
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("connect to bus %s: %w", displayURL(o.URL), err)
	}
	b.js, err = jetstream.New(b.nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	for name, sc := range o.Streams {
		if err := b.ensureStream(ctx, name, sc); err != nil {
			b.Close()
			return nil, err
		}
	}
	b.kv, err = b.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      "sluice_state",
		Description: "sluice: table schemas and other small shared state",
		History:     1,
		Storage:     jetstream.FileStorage,
	})
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("state bucket: %w", err)
	}
	return b, nil
}

func displayURL(u string) string {
	if u == "" {
		return "embedded"
	}
	return u
}

func (b *Bus) startEmbedded(o Options) error {
	if o.Dir == "" {
		return errors.New("bus: embedded server needs a data directory")
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return fmt.Errorf("bus store: %w", err)
	}
	maxPayload := o.MaxPayload
	if maxPayload == 0 {
		maxPayload = DefaultMaxPayload
	}
	opts := &server.Options{
		ServerName: "sluice",
		DontListen: true,
		JetStream:  true,
		StoreDir:   filepath.Clean(o.Dir),
		// Fsync every write before acknowledging it: the default lazy
		// fsync loses acknowledged messages on power loss.
		SyncAlways: true,
		MaxPayload: maxPayload,
		NoSigs:     true,
		NoLog:      true,
		// Stages pull large batches; don't cut them off as slow consumers.
		MaxPending:    512 << 20,
		WriteDeadline: 30 * time.Second,
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return fmt.Errorf("embedded bus: %w", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		srv.Shutdown()
		return errors.New("embedded bus: server did not become ready in 30s (is another sluice using this data dir?)")
	}
	b.srv = srv
	return nil
}

// subject is where a stream's messages are published.
func subject(stream string) string { return "sluice." + stream }

// subSubject is where PublishTo puts a message: under the stream's subject, so
// every consumer of the stream still receives it, while LastMsg can find the
// last message of one producer (a tailer keeps its checkpoint there).
func subSubject(stream, sub string) (string, error) {
	if err := validSub(sub); err != nil {
		return "", fmt.Errorf("stream %s: %w", stream, err)
	}
	return subject(stream) + "." + sub, nil
}

// validSub accepts a dot-separated sequence of NATS subject tokens without
// wildcards.
func validSub(sub string) error {
	if sub == "" {
		return errors.New("empty sub-subject")
	}
	for tok := range strings.SplitSeq(sub, ".") {
		if tok == "" {
			return fmt.Errorf("sub-subject %q has an empty token", sub)
		}
		if i := strings.IndexAny(tok, "*> \t\r\n"); i >= 0 {
			return fmt.Errorf("sub-subject %q: %q is not allowed in a subject token", sub, tok[i])
		}
	}
	return nil
}

// ensureStream creates or updates a stream. Its sub-subjects carry
// PublishTo's messages; consumers filter on nothing, so they read both.
// EnsureStream creates stream name, or updates its limits; a stream a
// running sluice adds (a pipeline's new output on reload).
func (b *Bus) EnsureStream(ctx context.Context, name string, sc StreamConfig) error {
	return b.ensureStream(ctx, name, sc)
}

func (b *Bus) ensureStream(ctx context.Context, name string, sc StreamConfig) error {
	cfg := jetstream.StreamConfig{
		Name:        name,
		Description: "sluice " + name,
		Subjects:    []string{subject(name), subject(name) + ".>"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      sc.Retention,
		MaxBytes:    sc.MaxBytes,
		Duplicates:  DuplicateWindow,
	}
	if cfg.MaxBytes == 0 {
		cfg.MaxBytes = -1
	}
	// JetStream refuses a duplicate window longer than the stream keeps
	// messages, which would make a short retention (say 1m) fail to open.
	if cfg.MaxAge > 0 && cfg.MaxAge < cfg.Duplicates {
		cfg.Duplicates = cfg.MaxAge
	}
	if _, err := b.js.CreateOrUpdateStream(ctx, cfg); err != nil {
		return fmt.Errorf("create stream %s: %w", name, err)
	}
	return nil
}

// MaxPayload is the largest message the bus accepts.
func (b *Bus) MaxPayload() int64 { return b.nc.MaxPayload() }

// Publish stores data on stream and returns its sequence once stored. A
// non-empty msgID makes a repeated publish (within the duplicate window) a
// no-op that returns the first copy's sequence.
func (b *Bus) Publish(ctx context.Context, stream string, data []byte, msgID string) (uint64, error) {
	ack, err := b.js.PublishMsg(ctx, newMsg(subject(stream), data, msgID))
	if err != nil {
		return 0, fmt.Errorf("publish to %s: %w", stream, err)
	}
	return ack.Sequence, nil
}

// PublishTo stores data on stream under the sub-subject sub (dot-separated
// NATS tokens, no wildcards), like Publish. Consumers of the stream receive it
// like any other message; LastMsg finds the last one stored under sub.
func (b *Bus) PublishTo(ctx context.Context, stream, sub string, data []byte, msgID string) (uint64, error) {
	subj, err := subSubject(stream, sub)
	if err != nil {
		return 0, fmt.Errorf("publish: %w", err)
	}
	ack, err := b.js.PublishMsg(ctx, newMsg(subj, data, msgID))
	if err != nil {
		return 0, fmt.Errorf("publish to %s: %w", subj, err)
	}
	return ack.Sequence, nil
}

// LastMsg returns the last message stored on stream under sub (see
// PublishTo); ok is false when there is none.
func (b *Bus) LastMsg(ctx context.Context, stream, sub string) (m Msg, ok bool, err error) {
	subj, err := subSubject(stream, sub)
	if err != nil {
		return Msg{}, false, fmt.Errorf("last message: %w", err)
	}
	s, err := b.js.Stream(ctx, stream)
	if err != nil {
		return Msg{}, false, fmt.Errorf("stream %s: %w", stream, err)
	}
	raw, err := s.GetLastMsgForSubject(ctx, subj)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return Msg{}, false, nil
	}
	if err != nil {
		return Msg{}, false, fmt.Errorf("last message on %s: %w", subj, err)
	}
	return Msg{Seq: raw.Sequence, Time: raw.Time, Data: b.decoded(stream, raw.Sequence, raw.Header, raw.Data)}, true, nil
}

// Outgoing is one message for PublishAll.
type Outgoing struct {
	Stream string
	Data   []byte
	MsgID  string
}

// PublishAll stores every message, pipelined, and returns when all are
// stored or the first failed.
func (b *Bus) PublishAll(ctx context.Context, msgs []Outgoing) error {
	futures := make([]jetstream.PubAckFuture, 0, len(msgs))
	for _, m := range msgs {
		f, err := b.js.PublishMsgAsync(newMsg(subject(m.Stream), m.Data, m.MsgID))
		if err != nil {
			return fmt.Errorf("publish to %s: %w", m.Stream, err)
		}
		futures = append(futures, f)
	}
	for i, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return fmt.Errorf("publish to %s: %w", msgs[i].Stream, err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// Msg is one message read from a stream.
type Msg struct {
	Seq  uint64
	Time time.Time
	Data []byte
	raw  jetstream.Msg
}

// Handler processes a batch of messages in stream order. Returning nil
// acknowledges them all; an error has them redelivered.
type Handler func(ctx context.Context, batch []Msg) error

// Consume reads stream through the durable consumer name until ctx is done,
// handing batches of up to maxBatch messages to handle.
func (b *Bus) Consume(ctx context.Context, stream, name string, maxBatch int, handle Handler) error {
	return b.ConsumePipelined(ctx, stream, name, maxBatch, func(ctx context.Context, batch []Msg) (Finish, error) {
		return nil, handle(ctx, batch)
	})
}

// Finish completes a batch of a PipelinedHandler: typically it stores what
// the handler made of it. Returning nil acknowledges the batch.
type Finish func(ctx context.Context) error

// PipelinedHandler works on a batch and returns how to finish it (nil: it
// is done). While one batch's Finish runs, Consume hands the next batch to
// the handler, so a stage computes while its previous output is being
// stored. Finishes run one at a time, in stream order.
//
// When a Finish fails, its batch and the batch handled during it are both
// redelivered (the latter was handled as if the former had been stored); the
// handler must forget what it assumed about both.
type PipelinedHandler func(ctx context.Context, batch []Msg) (Finish, error)

// ConsumePipelined is Consume with a PipelinedHandler.
func (b *Bus) ConsumePipelined(ctx context.Context, stream, name string, maxBatch int, handle PipelinedHandler) error {
	cons, err := b.js.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{
		Durable:       name,
		Description:   "sluice stage " + name,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       ackWait,
		MaxDeliver:    -1,
		MaxAckPending: 16 * maxBatch,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return fmt.Errorf("consumer %s on %s: %w", name, stream, err)
	}
	// Messages a crashed process had taken but not acknowledged would wait
	// out AckWait and, counting against MaxAckPending, stall the stage until
	// then: take them back at once. (Output is idempotent, so a peer sharing
	// this consumer at worst repeats work.)
	if info, err := cons.Info(ctx); err == nil && info.NumAckPending > 0 {
		if _, err := b.js.ResetConsumer(ctx, stream, name); err != nil {
			b.log.Warn("bus: could not take back unacknowledged messages; they return after the ack wait", "consumer", name, "err", err)
		} else {
			b.log.Info("bus: redelivering messages a previous run left unacknowledged", "consumer", name, "messages", info.NumAckPending)
		}
	}
	it, err := cons.Messages(jetstream.PullMaxMessagesWithBytesLimit(4*maxBatch, pullBytes))
	if err != nil {
		return fmt.Errorf("consume %s: %w", stream, err)
	}
	msgs := b.pump(ctx, stream, it)
	backoff := 100 * time.Millisecond
	fail := func(batch []Msg, err error) {
		b.log.Error("stage failed; batch will be redelivered", "consumer", name, "stream", stream,
			"first_seq", batch[0].Seq, "last_seq", batch[len(batch)-1].Seq, "err", err)
		for _, m := range batch {
			_ = m.raw.NakWithDelay(backoff)
		}
	}
	ack := func(batch []Msg) {
		for _, m := range batch {
			if err := m.raw.Ack(); err != nil {
				b.log.Warn("ack failed; message will be redelivered", "stream", stream, "seq", m.Seq, "err", err)
			}
		}
	}
	// The batch whose Finish is running, and where its result arrives.
	var prev []Msg
	var prevDone chan error
	result := func(err error) error {
		if err != nil {
			if ctx.Err() == nil {
				fail(prev, err)
			}
		} else {
			ack(prev)
		}
		prev, prevDone = nil, nil
		return err
	}
	settle := func() error {
		if prevDone == nil {
			return nil
		}
		return result(<-prevDone)
	}
	defer settle()
	for {
		var first *Msg
		if prevDone != nil {
			// Acknowledge as soon as the Finish ends, not only when the
			// next batch comes. (A failure seen here is seen before the
			// next batch is handled: only its own batch comes again.)
			select {
			case err := <-prevDone:
				_ = result(err)
			case m, ok := <-msgs:
				if !ok {
					return ctx.Err()
				}
				first = &m
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		batch, ok := nextBatch(ctx, msgs, maxBatch, first)
		if !ok {
			return ctx.Err()
		}
		finish, err := handle(ctx, batch)
		if perr := settle(); perr != nil && err == nil {
			err = fmt.Errorf("handled after a batch that failed: %w", perr)
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			fail(batch, err)
			sleep(ctx, backoff)
			backoff = min(2*backoff, 30*time.Second)
			continue
		}
		if finish == nil {
			backoff = 100 * time.Millisecond
			ack(batch)
			continue
		}
		prev, prevDone = batch, make(chan error, 1)
		go func(done chan error) { done <- finish(ctx) }(prevDone)
		backoff = 100 * time.Millisecond
	}
}

// ackWait is how long a durable consumer's delivery may stay unacknowledged
// before the server delivers it again.
const ackWait = 30 * time.Second

// DroppedDeliveries counts the deliveries to this process's durable
// consumers that the NATS client dropped; each comes again after the ack
// wait.
func (b *Bus) DroppedDeliveries() uint64 { return b.dropped.Load() }

// pump moves messages from a JetStream iterator onto a channel so callers can
// select on it together with timers and ctx.
func (b *Bus) pump(ctx context.Context, stream string, it jetstream.MessagesContext) <-chan Msg {
	ch := make(chan Msg, 256)
	go func() {
		<-ctx.Done()
		it.Stop()
	}()
	go func() {
		defer close(ch)
		var last uint64 // the consumer sequence of the last delivery
		for {
			m, err := it.Next()
			if err != nil {
				if errors.Is(err, jetstream.ErrMsgIteratorClosed) || ctx.Err() != nil {
					return
				}
				continue
			}
			md, err := m.Metadata()
			if err != nil {
				continue
			}
			if n := md.Sequence.Consumer; last != 0 && n > last+1 {
				// Deliveries in between never reached us: the client's
				// iterator dropped them (its channel holds as many messages
				// as it asks for, and a status message can take a place
				// when this goroutine is starved of CPU). The server still
				// holds them unacknowledged and redelivers them after the
				// ack wait, out of order.
				b.dropped.Add(n - last - 1)
				b.log.Warn("bus: the NATS client dropped deliveries; they come again after the ack wait", "stream", stream, "deliveries", n-last-1, "ack_wait", ackWait)
			}
			last = md.Sequence.Consumer
			data := b.decoded(stream, md.Sequence.Stream, m.Headers(), m.Data())
			select {
			case ch <- Msg{Seq: md.Sequence.Stream, Time: md.Timestamp, Data: data, raw: m}:
			case <-ctx.Done():
				return
			}
		}
	}()
	return ch
}

// nextBatch waits for a message (unless first is one already taken) and
// adds those that are ready, up to max messages or maxBatchBytes.
func nextBatch(ctx context.Context, ch <-chan Msg, max int, first *Msg) ([]Msg, bool) {
	var batch []Msg
	if first != nil {
		batch = append(batch, *first)
	} else {
		select {
		case m, ok := <-ch:
			if !ok {
				return nil, false
			}
			batch = append(batch, m)
		case <-ctx.Done():
			return nil, false
		}
	}
	size := len(batch[0].Data)
	for len(batch) < max && size < maxBatchBytes {
		select {
		case m, ok := <-ch:
			if !ok {
				return batch, true
			}
			batch = append(batch, m)
			size += len(m.Data)
		default:
			return batch, true
		}
	}
	return batch, true
}

// maxBatchBytes bounds a consumer's batch (the last message may go past
// it): a stage's output for one batch must fit what the server queues for
// a stream at once, and its memory stays bounded with large messages (a
// file source's 4 MiB records payloads).
const maxBatchBytes = 16 << 20

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// Reader follows a stream from a given sequence, without acks: the caller
// keeps its own position (the archiver keeps it in the lake).
type Reader struct {
	ch     <-chan Msg
	cancel context.CancelFunc
	// With a budget, the bytes delivered and not yet released stay under
	// it (one message may exceed it alone): a consumer that stops taking
	// messages holds at most that much of the stream in memory.
	budget int64
	mu     sync.Mutex
	cond   *sync.Cond
	held   int64
	done   bool
}

// ReadFromBounded is ReadFrom with a memory budget: the messages delivered
// and not yet handed back with Release hold at most maxBytes (a single
// larger message is still delivered, alone).
func (b *Bus) ReadFromBounded(ctx context.Context, stream string, from uint64, maxBytes int64) (*Reader, error) {
	return b.read(ctx, stream, func(c *jetstream.ConsumerConfig) {
		c.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		c.OptStartSeq = max(from, 1)
	}, maxBytes)
}

// Release hands back the memory of a message the consumer is done with
// (readers without a budget ignore it).
func (r *Reader) Release(m Msg) {
	if r.budget <= 0 {
		return
	}
	r.mu.Lock()
	r.held -= int64(len(m.Data))
	r.mu.Unlock()
	r.cond.Broadcast()
}

// Held is how many bytes of delivered messages are not yet released.
func (r *Reader) Held() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.held
}

// acquire waits until n more bytes fit the budget; false when the reader
// stops meanwhile.
func (r *Reader) acquire(n int64) bool {
	if r.budget <= 0 {
		return true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for r.held > 0 && r.held+n > r.budget && !r.done {
		r.cond.Wait()
	}
	r.held += n
	return !r.done
}

// ReadFrom opens a Reader at sequence from (1 = the beginning).
func (b *Bus) ReadFrom(ctx context.Context, stream string, from uint64) (*Reader, error) {
	return b.read(ctx, stream, func(c *jetstream.ConsumerConfig) {
		c.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		c.OptStartSeq = max(from, 1)
	})
}

// ReadSince opens a Reader at the first message stored at or after t.
func (b *Bus) ReadSince(ctx context.Context, stream string, t time.Time) (*Reader, error) {
	return b.read(ctx, stream, func(c *jetstream.ConsumerConfig) {
		c.DeliverPolicy = jetstream.DeliverByStartTimePolicy
		c.OptStartTime = &t
	})
}

// read follows a stream through an ephemeral pull consumer without acks.
// Fetching in bounded requests (rather than a long-lived iterator) suits
// readers that stop pulling for seconds, like the archiver writing a big
// file; if the consumer is lost, it is recreated after the last message seen.
func (b *Bus) read(ctx context.Context, stream string, start func(*jetstream.ConsumerConfig), budget ...int64) (*Reader, error) {
	newConsumer := func(ctx context.Context, after uint64) (jetstream.Consumer, error) {
		cfg := jetstream.ConsumerConfig{
			AckPolicy:         jetstream.AckNonePolicy,
			InactiveThreshold: 10 * time.Minute,
			MemoryStorage:     true,
		}
		start(&cfg)
		if after > 0 {
			cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
			cfg.OptStartSeq = after + 1
			cfg.OptStartTime = nil
		}
		return b.js.CreateConsumer(ctx, stream, cfg)
	}
	cons, err := newConsumer(ctx, 0)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", stream, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	ch := make(chan Msg, 1024)
	r := &Reader{ch: ch, cancel: cancel}
	r.cond = sync.NewCond(&r.mu)
	if len(budget) > 0 && budget[0] > 0 {
		r.budget = budget[0]
		go func() {
			<-ctx.Done()
			r.mu.Lock()
			r.done = true
			r.mu.Unlock()
			r.cond.Broadcast()
		}()
	}
	go func() {
		defer close(ch)
		defer func() {
			dctx, dcancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = b.js.DeleteConsumer(dctx, stream, cons.CachedInfo().Name)
			dcancel()
		}()
		var last, delivered uint64 // stream sequence, and the consumer's delivery count
		largest := int64(64 << 10) // bounded readers: the largest message seen (a guess at first)
		for ctx.Err() == nil {
			var batch jetstream.MessageBatch
			var err error
			if r.budget > 0 {
				// As many messages as a quarter of the budget holds at the
				// largest size seen so far (a fetch's byte limit below a
				// message's size would never deliver it).
				n := int(min(512, max(1, r.budget/4/max(largest, 1))))
				batch, err = cons.Fetch(n, jetstream.FetchMaxWait(time.Second))
			} else {
				batch, err = cons.Fetch(512, jetstream.FetchMaxBytes(pullBytes), jetstream.FetchMaxWait(time.Second))
			}
			if err == nil {
				for m := range batch.Messages() {
					md, merr := m.Metadata()
					if merr != nil || md.Sequence.Stream <= last {
						continue
					}
					if md.Sequence.Consumer != delivered+1 {
						// The client dropped messages (a slow consumer):
						// never skip one, start over after the last seen.
						err = fmt.Errorf("delivery %d after %d: messages were dropped", md.Sequence.Consumer, delivered)
						break
					}
					delivered = md.Sequence.Consumer
					last = md.Sequence.Stream
					data := b.decoded(stream, last, m.Headers(), m.Data())
					largest = max(largest, int64(len(data)))
					if !r.acquire(int64(len(data))) {
						return
					}
					select {
					case ch <- Msg{Seq: last, Time: md.Timestamp, Data: data}:
					case <-ctx.Done():
						return
					}
				}
				if err == nil {
					err = batch.Error()
				}
			}
			if err == nil || errors.Is(err, nats.ErrTimeout) || ctx.Err() != nil {
				continue
			}
			b.log.Warn("bus: read failed; reopening", "stream", stream, "after_seq", last, "err", err)
			sleep(ctx, 200*time.Millisecond)
			old := cons.CachedInfo().Name
			if c, err := newConsumer(ctx, last); err == nil {
				cons, delivered = c, 0
				_ = b.js.DeleteConsumer(ctx, stream, old)
			}
		}
	}()
	return r, nil
}

// C delivers the messages in order; it is closed when the reader stops.
func (r *Reader) C() <-chan Msg { return r.ch }

// Close stops the reader.
func (r *Reader) Close() { r.cancel() }

// StreamInfo is the state of one stream.
type StreamInfo struct {
	FirstSeq, LastSeq uint64
	Msgs, Bytes       uint64
}

// Info reports the state of stream.
func (b *Bus) Info(ctx context.Context, stream string) (StreamInfo, error) {
	s, err := b.js.Stream(ctx, stream)
	if err != nil {
		return StreamInfo{}, fmt.Errorf("stream %s: %w", stream, err)
	}
	st := s.CachedInfo().State
	return StreamInfo{FirstSeq: st.FirstSeq, LastSeq: st.LastSeq, Msgs: st.Msgs, Bytes: st.Bytes}, nil
}

// Streams lists, sorted, the streams sluice keeps on the bus: those it created
// (on an external NATS server, not the others that live there).
func (b *Bus) Streams(ctx context.Context) ([]string, error) {
	l := b.js.ListStreams(ctx)
	var names []string
	for info := range l.Info() {
		if c := info.Config; len(c.Subjects) > 0 && c.Subjects[0] == subject(c.Name) {
			names = append(names, c.Name)
		}
	}
	if err := l.Err(); err != nil {
		return nil, fmt.Errorf("list streams: %w", err)
	}
	slices.Sort(names)
	return names, nil
}

// Pending is how many messages of stream consumer name has not yet acknowledged.
func (b *Bus) Pending(ctx context.Context, stream, name string) (uint64, error) {
	c, err := b.js.Consumer(ctx, stream, name)
	if err != nil {
		return 0, err
	}
	info, err := c.Info(ctx)
	if err != nil {
		return 0, err
	}
	return info.NumPending + uint64(info.NumAckPending), nil
}

// ErrConflict reports a state update that lost a race with another writer.
var ErrConflict = errors.New("state changed concurrently")

// GetState reads a small shared record (nil, 0 when absent) and its revision.
func (b *Bus) GetState(ctx context.Context, key string) ([]byte, uint64, error) {
	e, err := b.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("state %s: %w", key, err)
	}
	return e.Value(), e.Revision(), nil
}

// PutState writes a record if its revision is still rev (0 = must not exist).
func (b *Bus) PutState(ctx context.Context, key string, value []byte, rev uint64) (uint64, error) {
	var (
		n   uint64
		err error
	)
	if rev == 0 {
		n, err = b.kv.Create(ctx, key, value)
	} else {
		n, err = b.kv.Update(ctx, key, value, rev)
	}
	if err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) || strings.Contains(err.Error(), "wrong last sequence") {
			return 0, fmt.Errorf("state %s: %w", key, ErrConflict)
		}
		return 0, fmt.Errorf("state %s: %w", key, err)
	}
	return n, nil
}

// DeleteState removes a record if its revision is still rev (0: whatever
// it is); a record already absent is no error.
func (b *Bus) DeleteState(ctx context.Context, key string, rev uint64) error {
	var opts []jetstream.KVDeleteOpt
	if rev != 0 {
		opts = append(opts, jetstream.LastRevision(rev))
	}
	err := b.kv.Delete(ctx, key, opts...)
	switch {
	case err == nil, errors.Is(err, jetstream.ErrKeyNotFound):
		return nil
	case strings.Contains(err.Error(), "wrong last sequence"):
		return fmt.Errorf("state %s: %w", key, ErrConflict)
	}
	return fmt.Errorf("state %s: %w", key, err)
}

// StateKeys lists the records whose keys start with prefix followed by a
// dot (prefix "pipeline.revenue" lists "pipeline.revenue.0of4", …).
func (b *Bus) StateKeys(ctx context.Context, prefix string) ([]string, error) {
	l, err := b.kv.ListKeysFiltered(ctx, prefix+".>")
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("state keys %s: %w", prefix, err)
	}
	var keys []string
	for k := range l.Keys() {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return slices.Compact(keys), nil
}

// Close drains the connection and stops the embedded server.
func (b *Bus) Close() error {
	b.closing.Store(true)
	if b.nc != nil {
		_ = b.nc.Drain()
		for i := 0; i < 50 && !b.nc.IsClosed(); i++ {
			time.Sleep(20 * time.Millisecond)
		}
		b.nc.Close()
	}
	if b.srv != nil {
		b.srv.Shutdown()
		b.srv.WaitForShutdown()
	}
	return nil
}
