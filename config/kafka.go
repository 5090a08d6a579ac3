package config

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"
)

// KafkaURL is a Kafka topic as pipelines name it:
// kafka://host:port[,host:port…]/topic[?group=NAME].
type KafkaURL struct {
	Brokers []string // host:port; a host without port gets 9092
	Topic   string
	Group   string // the consumer group of an input; empty: sluice-<pipeline>
}

// kafkaTopicRe is Kafka's own rule for topic names.
var kafkaTopicRe = regexp.MustCompile(`^[A-Za-z0-9._-]{1,249}$`)

// IsKafkaURL reports whether s names a Kafka topic rather than a stream.
func IsKafkaURL(s string) bool { return strings.HasPrefix(s, "kafka://") }

// ParseKafkaURL reads kafka://host:port[,host:port…]/topic[?group=NAME].
func ParseKafkaURL(s string) (KafkaURL, error) {
	var k KafkaURL
	rest, ok := strings.CutPrefix(s, "kafka://")
	if !ok {
		return k, fmt.Errorf("%q is not a kafka:// URL", s)
	}
	rest, query, _ := strings.Cut(rest, "?")
	hosts, topic, _ := strings.Cut(rest, "/")
	for h := range strings.SplitSeq(hosts, ",") {
		if h == "" {
			return k, fmt.Errorf("%q: the brokers are host:port[,host:port…]", s)
		}
		if _, _, err := net.SplitHostPort(h); err != nil {
			h = net.JoinHostPort(h, "9092")
		}
		k.Brokers = append(k.Brokers, h)
	}
	if !kafkaTopicRe.MatchString(topic) {
		return k, fmt.Errorf("%q: the topic after the brokers is missing or not a Kafka topic name (letters, digits, ., _, -)", s)
	}
	k.Topic = topic
	q, err := url.ParseQuery(query)
	if err != nil {
		return k, fmt.Errorf("%q: %w", s, err)
	}
	for name, vals := range q {
		if name != "group" || len(vals) != 1 || vals[0] == "" {
			return k, fmt.Errorf("%q: the only parameter is group=NAME (once)", s)
		}
		k.Group = vals[0]
	}
	return k, nil
}

// String is the URL without the group: how logs and bad rows name a topic.
func (k KafkaURL) String() string {
	return "kafka://" + strings.Join(k.Brokers, ",") + "/" + k.Topic
}
