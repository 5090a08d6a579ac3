package node_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Pipelines with Kafka in a running sluice: a topic (kfake, an in-process
// Kafka on 127.0.0.1) into a warehouse table with the records' keys and
// headers, and the events stream out to a topic keyed by user. A record
// that is not JSON is a bad row. After a restart of sluice the topic is read
// on from the committed offsets: no record twice, none lost.
func TestKafkaPipelines(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "orders"), kfake.SeedTopics(1, "purchases"))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	addr := cluster.ListenAddrs()[0]
	dir := t.TempDir()
	cfgFile := dir + "/sluice.yaml"
	os.WriteFile(cfgFile, []byte(fmt.Sprintf(`
pipelines:
  orders_in:
    from: kafka://%[1]s/orders
    steps:
      - set: {amount_cents: 'amount * 100'}
    to: {table: kafka_orders}
  purchases_out:
    from: events
    steps:
      - filter: 'event == "purchase"'
      - keep: [event_id, user_id, revenue]
    to: {kafka: 'kafka://%[1]s/purchases', key: user_id}
`, addr)), 0o644)
	produce := func(recs ...*kgo.Record) {
		t.Helper()
		cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	order := func(key string, id int, src string) *kgo.Record {
		return &kgo.Record{Topic: "orders", Key: []byte(key), Value: []byte(fmt.Sprintf(`{"id":%d,"amount":%d.5}`, id, id)),
			Headers: []kgo.RecordHeader{{Key: "src", Value: []byte(src)}}}
	}
	produce(order("k1", 1, "web"), order("k2", 2, "app"), &kgo.Record{Topic: "orders", Key: []byte("k3"), Value: []byte("{oops")}, order("k4", 4, "web"))

	n := startNode(t, dir+"/data", withConfigFile(t, cfgFile))
	api, coll := n.APIURL(), n.CollectorURL()
	waitFor(t, api, `SELECT id, _key, _headers->>'src', amount_cents FROM kafka_orders ORDER BY id`, "[[1 k1 web 150] [2 k2 app 250] [4 k4 web 450]]")
	waitFor(t, api, `SELECT type, payload FROM bad`, "[[pipeline_failure {oops]]")

	body := `{"event":"purchase","event_id":"p1","user_id":"ann","revenue":9.5}
{"event":"page_view","event_id":"v1","user_id":"bob"}
`
	if code, msg := post(t, coll, "application/x-ndjson", []byte(body)); code != 200 {
		t.Fatalf("post: %d %s", code, msg)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics("purchases"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var recs []*kgo.Record
	for len(recs) == 0 && ctx.Err() == nil {
		recs = append(recs, cl.PollFetches(ctx).Records()...)
	}
	if len(recs) != 1 || string(recs[0].Key) != "ann" || string(recs[0].Value) != `{"event_id":"p1","revenue":9.5,"user_id":"ann"}` {
		t.Fatalf("purchases topic: %v", recs)
	}

	// Restart: what arrived meanwhile is read, nothing is read twice.
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}
	produce(order("k5", 5, "app"), order("k6", 6, "web"))
	n = startNode(t, dir+"/data", withConfigFile(t, cfgFile))
	defer n.Stop()
	api = n.APIURL()
	waitFor(t, api, `SELECT count(*), count(DISTINCT id) FROM kafka_orders`, "[[5 5]]")
	time.Sleep(time.Second)
	waitFor(t, api, `SELECT list(id ORDER BY id) FROM kafka_orders`, "[[[1 2 4 5 6]]]")
	waitFor(t, api, `SELECT count(*) FROM bad`, "[[1]]")
}
