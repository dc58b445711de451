package kafka

import (
	"maps"
	"testing"

	"github.com/IBM/sarama"
	wkafka "github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace/job"
)

func headers(pm *sarama.ProducerMessage) map[string]string {
	h := map[string]string{}
	for _, x := range pm.Headers {
		h[string(x.Key)] = string(x.Value)
	}
	return h
}

func keyOf(t *testing.T, pm *sarama.ProducerMessage) string {
	t.Helper()
	b, err := pm.Key.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestMarshalPartitionKey(t *testing.T) {
	for _, tc := range []struct {
		name string
		md   message.Metadata
		want string
	}{
		{"partition key first", message.Metadata{job.MetaPartitionKey: "pk",
			job.MetaOrganisationID: "org"}, "pk"},
		{"organisation next", message.Metadata{job.MetaOrganisationID: "org"}, "org"},
		{"uuid last", message.Metadata{}, "id-1"},
		{"empty values skipped", message.Metadata{job.MetaPartitionKey: "",
			job.MetaOrganisationID: ""}, "id-1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := message.NewMessage("id-1", []byte(`{}`))
			m.Metadata = tc.md
			pm, err := Marshaler{}.Marshal("t", m)
			if err != nil {
				t.Fatal(err)
			}
			if got := keyOf(t, pm); got != tc.want {
				t.Fatalf("key %q, want %q", got, tc.want)
			}
		})
	}
	if _, err := (Marshaler{}).Marshal("t", message.NewMessage("", nil)); err == nil {
		t.Fatal("a message without UUID was marshalled")
	}
}

func TestMarshalHeadersAndRoundTrip(t *testing.T) {
	m := message.NewMessage("0b1c", []byte(`{"a":1}`))
	m.Metadata = message.Metadata{
		job.MetaEventType:      "billing.invoice.paid",
		job.MetaOccurredAt:     "2026-12-03T10:00:00Z",
		job.MetaSource:         "millrace/api",
		job.MetaOrganisationID: "org-7",
		job.MetaTraceparent:    "00-abc-def-01",
		"x-custom":             "v",
	}
	pm, err := Marshaler{}.Marshal("billing.invoice.paid", m)
	if err != nil {
		t.Fatal(err)
	}
	h := headers(pm)
	want := map[string]string{
		wkafka.UUIDHeaderKey: "0b1c",
		HeaderSpecVersion:    "1.0",
		HeaderID:             "0b1c",
		HeaderType:           "billing.invoice.paid",
		HeaderTime:           "2026-12-03T10:00:00Z",
		HeaderSource:         "millrace/api",
		HeaderContentType:    "application/json",
		job.MetaTraceparent:  "00-abc-def-01",
		"x-custom":           "v",
	}
	for k, v := range want {
		if h[k] != v {
			t.Errorf("header %s = %q, want %q", k, h[k], v)
		}
	}
	if len(pm.Headers) != len(h) {
		t.Errorf("duplicate headers: %d headers, %d distinct", len(pm.Headers), len(h))
	}

	rec := consumerRecord(pm, "billing.invoice.paid", 3, 42)
	got, err := Marshaler{}.Unmarshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	if got.UUID != "0b1c" || string(got.Payload) != `{"a":1}` {
		t.Fatalf("round trip: id %q payload %q", got.UUID, got.Payload)
	}
	wantMD := message.Metadata{}
	for k, v := range m.Metadata {
		wantMD[k] = v
	}
	// The key, the organisation, comes back as the partition key.
	wantMD[job.MetaPartitionKey] = "org-7"
	if !maps.Equal(got.Metadata, wantMD) {
		t.Fatalf("metadata %v, want %v", got.Metadata, wantMD)
	}

	// A message without the CloudEvents metadata keeps its metadata as is.
	bare := message.NewMessage("id-2", []byte("x"))
	bare.Metadata.Set("test", "1")
	pm, err = Marshaler{}.Marshal("t", bare)
	if err != nil {
		t.Fatal(err)
	}
	got, _ = Marshaler{}.Unmarshal(consumerRecord(pm, "t", 0, 0))
	wantMD = message.Metadata{"test": "1", job.MetaPartitionKey: "id-2"}
	if !maps.Equal(got.Metadata, wantMD) {
		t.Fatalf("bare metadata %v, want %v", got.Metadata, wantMD)
	}
}

func consumerRecord(pm *sarama.ProducerMessage, topic string, p int32,
	off int64) *sarama.ConsumerMessage {
	rec := &sarama.ConsumerMessage{Topic: topic, Partition: p, Offset: off}
	if pm.Key != nil {
		rec.Key, _ = pm.Key.Encode()
	}
	rec.Value, _ = pm.Value.Encode()
	for i := range pm.Headers {
		rec.Headers = append(rec.Headers, &pm.Headers[i])
	}
	return rec
}

func TestUnmarshalForeign(t *testing.T) {
	hd := func(k, v string) *sarama.RecordHeader {
		return &sarama.RecordHeader{Key: []byte(k), Value: []byte(v)}
	}
	t.Run("no headers: id from position, key as partition key", func(t *testing.T) {
		rec := &sarama.ConsumerMessage{Topic: "t", Partition: 2, Offset: 9,
			Key: []byte("org-1"), Value: []byte("not json")}
		m, err := Marshaler{}.Unmarshal(rec)
		if err != nil {
			t.Fatal(err)
		}
		if m.UUID != RecordID("t", 2, 9) || m.UUID == "" {
			t.Fatalf("id %q", m.UUID)
		}
		if m.UUID == RecordID("t", 2, 10) || m.UUID == RecordID("u", 2, 9) {
			t.Fatal("ids of different records collide")
		}
		if string(m.Payload) != "not json" || m.Metadata[job.MetaPartitionKey] != "org-1" {
			t.Fatalf("payload %q metadata %v", m.Payload, m.Metadata)
		}
	})
	t.Run("cloudevents headers", func(t *testing.T) {
		rec := &sarama.ConsumerMessage{Topic: "t", Value: []byte(`{}`), Headers: []*sarama.RecordHeader{
			hd(HeaderSpecVersion, "1.0"), hd(HeaderID, "order-123"),
			hd(HeaderType, "shop.order.created"), hd(HeaderSource, "/shop"),
			hd(HeaderTime, "2026-01-01T00:00:00Z"), hd(HeaderContentType, "application/json"),
			hd("ce_subject", "o-1"),
		}}
		m, _ := Marshaler{}.Unmarshal(rec)
		want := message.Metadata{job.MetaEventType: "shop.order.created",
			job.MetaSource: "/shop", job.MetaOccurredAt: "2026-01-01T00:00:00Z",
			"ce_subject": "o-1"}
		if m.UUID != "order-123" || !maps.Equal(m.Metadata, want) {
			t.Fatalf("id %q metadata %v", m.UUID, m.Metadata)
		}
	})
	t.Run("metadata wins over cloudevents headers", func(t *testing.T) {
		rec := &sarama.ConsumerMessage{Topic: "t", Headers: []*sarama.RecordHeader{
			hd(wkafka.UUIDHeaderKey, "wm-id"), hd(HeaderID, "ce-id"),
			hd(HeaderType, "ce.type"), hd(job.MetaEventType, "meta.type"),
		}}
		m, _ := Marshaler{}.Unmarshal(rec)
		if m.UUID != "wm-id" || m.Metadata[job.MetaEventType] != "meta.type" {
			t.Fatalf("id %q metadata %v", m.UUID, m.Metadata)
		}
	})
	t.Run("junk headers", func(t *testing.T) {
		rec := &sarama.ConsumerMessage{Topic: "t", Partition: 1, Offset: 5,
			Value: []byte{0xff, 0x00, 0xfe}, Headers: []*sarama.RecordHeader{
				nil, hd("", "empty key"), hd(wkafka.UUIDHeaderKey, "  "), hd(HeaderID, ""),
				{Key: []byte{0xff, 'k'}, Value: []byte{0xfe}}, hd("dup", "1"), hd("dup", "2"),
			}}
		m, err := Marshaler{}.Unmarshal(rec)
		if err != nil {
			t.Fatal(err)
		}
		if m.UUID != RecordID("t", 1, 5) {
			t.Fatalf("id %q", m.UUID)
		}
		if m.Metadata["dup"] != "2" || m.Metadata["\uFFFDk"] != "\uFFFD" || len(m.Metadata) != 2 {
			t.Fatalf("metadata %q", m.Metadata)
		}
		if string(m.Payload) != string([]byte{0xff, 0x00, 0xfe}) {
			t.Fatalf("payload changed: %q", m.Payload)
		}
	})
}
