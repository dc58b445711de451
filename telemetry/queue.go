package telemetry

import "github.com/prometheus/client_golang/prometheus"

// Backlogger is a transport that can say how many messages wait for a
// consumer group on a topic: its queue depth, or its consumer lag.
type Backlogger interface {
	Backlog(topic, group string) int
}

// TopicGroup names one subscription: a topic and the consumer group reading
// it.
type TopicGroup struct{ Topic, Group string }

// RegisterQueueDepth exposes millrace_queue_depth{topic,group}, read from b
// at each scrape for every subscription in subs.
func RegisterQueueDepth(reg prometheus.Registerer, b Backlogger, subs []TopicGroup) {
	reg.MustRegister(queueDepth{b: b, subs: subs, desc: prometheus.NewDesc(
		"millrace_queue_depth",
		"Messages waiting for a consumer group on a topic (queue depth or consumer lag).",
		[]string{"topic", "group"}, nil)})
}

type queueDepth struct {
	b    Backlogger
	subs []TopicGroup
	desc *prometheus.Desc
}

func (q queueDepth) Describe(ch chan<- *prometheus.Desc) { ch <- q.desc }

func (q queueDepth) Collect(ch chan<- prometheus.Metric) {
	for _, s := range q.subs {
		ch <- prometheus.MustNewConstMetric(q.desc, prometheus.GaugeValue,
			float64(q.b.Backlog(s.Topic, s.Group)), s.Topic, s.Group)
	}
}
