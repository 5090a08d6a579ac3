package config

import (
	"fmt"
	"testing"
)

func TestParseKafkaURL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"kafka://127.0.0.1:9092/orders", "[127.0.0.1:9092] orders "},
		{"kafka://a:1,b/orders.v2?group=g1", "[a:1 b:9092] orders.v2 g1"},
		{"kafka://[::1]:9093/t_1", "[[::1]:9093] t_1 "},
	} {
		k, err := ParseKafkaURL(tc.in)
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if got := fmt.Sprint(k.Brokers, " ", k.Topic, " ", k.Group); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.in, got, tc.want)
		}
	}
	for _, in := range []string{
		"kafka://h:9092", "kafka://h:9092/", "kafka:///t", "kafka://a,,b/t", "kafka://h/t/x",
		"kafka://h/t?group=", "kafka://h/t?grp=x", "kafka://h/t?group=a&group=b", "nats://h/t",
	} {
		if k, err := ParseKafkaURL(in); err == nil {
			t.Errorf("%s: no error, got %+v", in, k)
		}
	}
}

func TestKafkaPipelineErrors(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		want      wantErr
	}{
		{"no topic", "pipelines:\n  p: {from: 'kafka://h:9092', to: {stream: out}}\n",
			wantErr{2, 13, "pipelines.p.from", "the topic after the brokers is missing", "kafka://127.0.0.1:9092/orders"}},
		{"topic twice", "pipelines:\n  p: {from: ['kafka://h/a', 'kafka://g/a'], to: {stream: out}}\n",
			wantErr{2, 13, "pipelines.p.from", "reads Kafka topic a twice", ""}},
		{"two outputs in one", "pipelines:\n  p: {from: events, to: {stream: s, kafka: 'kafka://h/t'}}\n",
			wantErr{2, 25, "pipelines.p.to", "exactly one of stream, lake, table, kafka, file or webhook", ""}},
		{"key without kafka", "pipelines:\n  p: {from: events, to: {stream: s, key: user_id}}\n",
			wantErr{2, 42, "pipelines.p.to.key", "only a kafka output has one", ""}},
		{"bad output URL", "pipelines:\n  p: {from: events, to: {kafka: 'kafka://h/a b'}}\n",
			wantErr{2, 33, "pipelines.p.to.kafka", "not a Kafka topic name", ""}},
		{"group on output", "pipelines:\n  p: {from: events, to: {kafka: 'kafka://h/t?group=g'}}\n",
			wantErr{2, 33, "pipelines.p.to.kafka", "group is for reading a topic", ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkErrors(t, tc.src, []wantErr{tc.want})
		})
	}
	ok := `pipelines:
  p:
    from: [events, 'kafka://127.0.0.1:9092,127.0.0.1:9093/orders?group=g']
    to: [{kafka: 'kafka://127.0.0.1:9092/out', key: user_id}, {table: t}]
`
	c, err := Parse("sluice.yaml", []byte(ok))
	if err != nil {
		t.Fatal(err)
	}
	p := c.Pipelines["p"]
	if got := fmt.Sprint(p.From, p.To, c.PipelineStreams()); got != "[events kafka://127.0.0.1:9092,127.0.0.1:9093/orders?group=g] [kafka kafka://127.0.0.1:9092/out table t] []" {
		t.Errorf("decoded %s", got)
	}
	if p.To[0].Key != "user_id" {
		t.Errorf("key %q", p.To[0].Key)
	}
}
