package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-data/sluice/bus"
	"github.com/sluice-data/sluice/config"
)

// Kafka as a pipeline's input and output.
//
// An input (from: kafka://brokers/topic?group=NAME) is read through a
// consumer group (default sluice-<pipeline>). Each record's value is a JSON
// object, or NDJSON of several; its key and headers become the fields _key
// (text) and _headers (an object of text) of each event. The pipeline
// tracks a record as message <offset> of the input kafka:<topic>/<partition>,
// exactly as it tracks bus messages, and commits the group's offsets where
// it would save a bus position: after every output of the records before
// them was stored, and, with a window, no further than the first record an
// open window depends on. Kafka holds the offsets and the bus checkpoint the
// time up to which windows are final, so windows over a topic are
// exactly-once as over a stream, as long as one process runs the pipeline.
//
// An output ({kafka: kafka://brokers/topic, key: FIELD}) is written by
// franz-go's idempotent producer with acks from all in-sync replicas,
// synchronously per batch: the pipeline moves its positions on only after
// Kafka acknowledged. The record key is the event's field named by key (or
// its _key), the headers its _headers; the value is the event as JSON
// without those two. A crash between producing and saving the positions
// produces those records again when they are read again: Kafka outputs are
// at-least-once.

// Fields a Kafka input adds to each event and a Kafka output takes away.
const (
	KafkaKeyField     = "_key"
	KafkaHeadersField = "_headers"
)

// kafkaInput reads one topic through the pipeline's consumer group.
type kafkaInput struct {
	url       config.KafkaURL
	cl        *kgo.Client
	log       *slog.Logger
	committed map[int32]int64 // per partition, the offset last committed
}

func newKafkaInput(pipeline, from, start string, log *slog.Logger) (*kafkaInput, error) {
	u, err := config.ParseKafkaURL(from)
	if err != nil {
		return nil, err
	}
	group := u.Group
	if group == "" {
		group = "sluice-" + pipeline
	}
	reset := kgo.NewOffset().AtStart()
	if start == "now" {
		reset = kgo.NewOffset().AtEnd()
	}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(u.Brokers...),
		kgo.ClientID("sluice"),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(u.Topic),
		kgo.ConsumeResetOffset(reset),
		kgo.DisableAutoCommit(),
	)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", u, err)
	}
	return &kafkaInput{url: u, cl: cl, log: log.With("kafka", u.String(), "group", group), committed: map[int32]int64{}}, nil
}

// kafkaStream names a topic's partition as a pipeline input.
func kafkaStream(topic string, partition int32) string {
	return fmt.Sprintf("kafka:%s/%d", topic, partition)
}

// parseKafkaStream reads a name made by kafkaStream (a Kafka topic has no
// slash in its name).
func parseKafkaStream(s string) (topic string, partition int32, ok bool) {
	rest, ok := strings.CutPrefix(s, "kafka:")
	if !ok {
		return "", 0, false
	}
	i := strings.LastIndexByte(rest, '/')
	if i < 0 {
		return "", 0, false
	}
	n, err := strconv.ParseInt(rest[i+1:], 10, 32)
	return rest[:i], int32(n), err == nil
}

// read hands the topic's records to in until ctx ends.
func (k *kafkaInput) read(ctx context.Context, in chan<- item) {
	for {
		fs := k.cl.PollFetches(ctx)
		if ctx.Err() != nil || fs.IsClientClosed() {
			return
		}
		failed := false
		fs.EachError(func(topic string, partition int32, err error) {
			failed = true
			k.log.Warn("kafka fetch failed", "topic", topic, "partition", partition, "err", err)
		})
		if failed && fs.NumRecords() == 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
		}
		for it := fs.RecordIter(); !it.Done(); {
			r := it.Next()
			m := bus.Msg{Seq: uint64(r.Offset), Time: r.Timestamp, Data: r.Value}
			select {
			case in <- item{stream: kafkaStream(r.Topic, r.Partition), m: m, rec: r}:
			case <-ctx.Done():
				return
			}
		}
	}
}

// commit commits next (the next offset to read, per input name) for this
// topic's partitions that moved on since the last commit.
func (k *kafkaInput) commit(ctx context.Context, next map[string]uint64) error {
	offsets := map[int32]kgo.EpochOffset{}
	for s, n := range next {
		topic, partition, ok := parseKafkaStream(s)
		if !ok || topic != k.url.Topic || k.committed[partition] == int64(n) {
			continue
		}
		offsets[partition] = kgo.EpochOffset{Epoch: -1, Offset: int64(n)}
	}
	if len(offsets) == 0 {
		return nil
	}
	// Bounded: at shutdown ctx does not end, and a broker away must not
	// hold sluice up.
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var failed error
	k.cl.CommitOffsetsSync(ctx, map[string]map[int32]kgo.EpochOffset{k.url.Topic: offsets},
		func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
			if err != nil {
				failed = err
				clear(offsets)
				return
			}
			for _, t := range resp.Topics {
				for _, p := range t.Partitions {
					if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
						failed = fmt.Errorf("partition %d: %w", p.Partition, err)
						delete(offsets, p.Partition)
					}
				}
			}
		})
	for partition, o := range offsets {
		k.committed[partition] = o.Offset
	}
	if failed != nil {
		return fmt.Errorf("commit offsets of %s: %w", k.url, failed)
	}
	return nil
}

func (k *kafkaInput) close() { k.cl.Close() }

// recordFields adds a record's key and headers to an event read from it.
func recordFields(ev Event, r *kgo.Record) {
	if r.Key != nil {
		ev[KafkaKeyField] = string(r.Key)
	}
	if len(r.Headers) > 0 {
		h := make(map[string]any, len(r.Headers))
		for _, kv := range r.Headers {
			h[kv.Key] = string(kv.Value)
		}
		ev[KafkaHeadersField] = h
	}
}

// producers are the clients of a pipeline's Kafka outputs, one per list of
// brokers, made when first used.
type producers map[string]*kgo.Client

func (ps producers) client(u config.KafkaURL) (*kgo.Client, error) {
	id := strings.Join(u.Brokers, ",")
	if cl := ps[id]; cl != nil {
		return cl, nil
	}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(u.Brokers...),
		kgo.ClientID("sluice"),
		kgo.RequiredAcks(kgo.AllISRAcks()), // idempotent producing needs it; it is the default, said here as a promise
		kgo.RecordDeliveryTimeout(30*time.Second),
	)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", u, err)
	}
	ps[id] = cl
	return cl, nil
}

func (ps producers) close() {
	for id, cl := range ps {
		cl.Close()
		delete(ps, id)
	}
}

// produce writes the rows of out's Kafka outputs and waits until Kafka
// acknowledged every record.
func (p *Pipeline) produce(ctx context.Context, out *outputs) error {
	// One ProduceSync per client, so that each waits for its own records.
	recs := map[*kgo.Client][]*kgo.Record{}
	count := map[config.Output]int{}
	for o, rows := range out.rows {
		if o.Kafka == "" {
			continue
		}
		u, err := config.ParseKafkaURL(o.Kafka)
		if err != nil {
			return err
		}
		cl, err := p.producers.client(u)
		if err != nil {
			return err
		}
		for _, ev := range rows {
			r, err := kafkaRecord(o, u.Topic, ev)
			if err != nil {
				return fmt.Errorf("%s: %w", o, err)
			}
			recs[cl] = append(recs[cl], r)
		}
		count[o] = len(rows)
	}
	for cl, rs := range recs {
		if err := cl.ProduceSync(ctx, rs...).FirstErr(); err != nil {
			return fmt.Errorf("kafka output: %w", err)
		}
	}
	for o, n := range count {
		eventsOut.WithLabelValues(p.o.Name, o.String()).Add(float64(n))
	}
	return nil
}

// kafkaRecord makes the record of an event for output o.
func kafkaRecord(o config.Output, topic string, ev Event) (*kgo.Record, error) {
	r := &kgo.Record{Topic: topic}
	keyField := o.Key
	if keyField == "" {
		keyField = KafkaKeyField
	}
	if v, ok := ev[keyField]; ok && v != nil {
		k, err := asText(v)
		if err != nil {
			return nil, fmt.Errorf("key %s: %w", keyField, err)
		}
		r.Key = []byte(k)
	}
	if h, ok := ev[KafkaHeadersField].(map[string]any); ok {
		for _, name := range sortedKeys(h) {
			v, err := asText(h[name])
			if err != nil {
				return nil, fmt.Errorf("header %s: %w", name, err)
			}
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: name, Value: []byte(v)})
		}
	}
	// The event may go to other outputs too: it is not changed.
	value := ev
	_, hasKey := ev[KafkaKeyField]
	_, hasHeaders := ev[KafkaHeadersField]
	if hasKey || hasHeaders {
		value = maps.Clone(ev)
		delete(value, KafkaKeyField)
		delete(value, KafkaHeadersField)
	}
	b, err := encode(nil, value)
	if err != nil {
		return nil, err
	}
	r.Value = b[:len(b)-1] // without the newline
	return r, nil
}

// asText is a value as a Kafka key or header holds it: text as it is,
// anything else as JSON.
func asText(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano), nil
	}
	b, err := json.Marshal(v)
	return string(b), err
}
