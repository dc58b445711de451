package kafka

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	wkafka "github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/millrace/millrace/job"
	"github.com/millrace/millrace/transport/kafka/kafkatest"
)

func publish(t testing.TB, tr *Transport, topic string, msgs ...*message.Message) {
	t.Helper()
	if err := tr.Publisher().Publish(topic, msgs...); err != nil {
		t.Fatalf("publish: %v", err)
	}
}

func ids(msgs []*message.Message) map[string]int {
	out := map[string]int{}
	for _, m := range msgs {
		out[m.UUID]++
	}
	return out
}

// A group that joins after messages were published reads them: a new group
// starts at the oldest offset, not the newest.
func TestNewGroupReadsOldMessages(t *testing.T) {
	c := kafkatest.Start(t, 1)
	tr := newTransport(t, testConfig(c))
	ensure(t, tr, "old")
	var sent []*message.Message
	for i := 0; i < 5; i++ {
		sent = append(sent, message.NewMessage(job.NewID(), []byte(`{}`)))
	}
	publish(t, tr, "old", sent...)

	ch := subscribe(t, newSub(t, tr, "late-group"), "old")
	got := ids(receive(t, ch, 5, 20*time.Second))
	for _, m := range sent {
		if got[m.UUID] == 0 {
			t.Fatalf("message %s published before the group joined was not delivered", m.UUID)
		}
	}
	after := message.NewMessage(job.NewID(), []byte(`{}`))
	publish(t, tr, "old", after)
	if m := receive(t, ch, 1, 20*time.Second)[0]; m.UUID != after.UUID {
		t.Fatalf("got %s, want %s", m.UUID, after.UUID)
	}
}

// Messages of one organisation are delivered in publish order, with 8
// partitions and two competing subscribers, and each organisation stays on
// one partition.
func TestPerKeyOrder(t *testing.T) {
	c := kafkatest.Start(t, 1)
	cfg := testConfig(c)
	cfg.Partitions = 8
	tr, tr2 := newTransport(t, cfg), newTransport(t, cfg)
	ensure(t, tr, "ordered")

	const keys, perKey = 6, 40
	var msgs []*message.Message
	for i := 0; i < perKey; i++ {
		for k := 0; k < keys; k++ {
			m := message.NewMessage(job.NewID(), []byte(strconv.Itoa(i)))
			if k == 0 {
				m.Metadata.Set(job.MetaPartitionKey, "pk-0")
			} else {
				m.Metadata.Set(job.MetaOrganisationID, fmt.Sprintf("org-%d", k))
			}
			msgs = append(msgs, m)
		}
	}
	keyOf := func(m *message.Message) string { return PartitionKey(m) }

	var mu sync.Mutex
	seq := map[string][]int{}
	parts := map[string]map[int32]bool{}
	seen := map[string]bool{}
	all := make(chan struct{})
	consume := func(ch <-chan *message.Message) {
		for m := range ch {
			n, _ := strconv.Atoi(string(m.Payload))
			p, _ := wkafka.MessagePartitionFromCtx(m.Context())
			k := keyOf(m)
			mu.Lock()
			if !seen[m.UUID] {
				seen[m.UUID] = true
				seq[k] = append(seq[k], n)
				if parts[k] == nil {
					parts[k] = map[int32]bool{}
				}
				parts[k][p] = true
				if len(seen) == len(msgs) {
					close(all)
				}
			}
			mu.Unlock()
			m.Ack()
		}
	}
	go consume(subscribe(t, newSub(t, tr, "order"), "ordered"))
	go consume(subscribe(t, newSub(t, tr2, "order"), "ordered"))
	publish(t, tr, "ordered", msgs...)
	select {
	case <-all:
	case <-time.After(30 * time.Second):
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("received %d of %d", len(seen), len(msgs))
	}
	mu.Lock()
	defer mu.Unlock()
	used := map[int32]bool{}
	for k, s := range seq {
		for i, n := range s {
			if n != i {
				t.Fatalf("key %s: order %v", k, s)
			}
		}
		if len(parts[k]) != 1 {
			t.Fatalf("key %s on partitions %v", k, parts[k])
		}
		for p := range parts[k] {
			used[p] = true
		}
	}
	if len(used) < 2 {
		t.Fatalf("%d keys all on partitions %v", keys, used)
	}
}

// committed waits until group has committed every record of topic, which
// proves nothing of it will be delivered again.
func committed(t testing.TB, c *kafkatest.Cluster, group, topic string) {
	t.Helper()
	adm := kadm.NewClient(kgoClient(t, c))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		ends, err := adm.ListEndOffsets(ctx, topic)
		if err == nil {
			var offs kadm.OffsetResponses
			offs, err = adm.FetchOffsets(ctx, group)
			if err == nil {
				done := true
				ends.Each(func(o kadm.ListedOffset) {
					got, ok := offs.Lookup(topic, o.Partition)
					if o.Offset > 0 && (!ok || got.At < o.Offset) {
						done = false
					}
				})
				if done {
					return
				}
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("group %s did not commit all of %s: %v", group, topic, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Records produced by a plain Kafka client, without Watermill's header, are
// delivered once each, with an id from ce_id or derived from the record's
// position that stays the same when the record is delivered again.
func TestForeignRecords(t *testing.T) {
	c := kafkatest.Start(t, 1)
	tr := newTransport(t, testConfig(c))
	ensure(t, tr, "foreign")
	cl := kgoClient(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	recs := []*kgo.Record{
		{Topic: "foreign", Value: []byte(`{"plain":true}`)},
		{Topic: "foreign", Key: []byte("org-9"), Value: []byte(`{"keyed":true}`)},
		{Topic: "foreign", Value: []byte(`{"ce":true}`), Headers: []kgo.RecordHeader{
			{Key: "ce_specversion", Value: []byte("1.0")},
			{Key: "ce_id", Value: []byte("order-123")},
			{Key: "ce_type", Value: []byte("shop.order.created")},
			{Key: "ce_source", Value: []byte("/shop")},
			{Key: "ce_time", Value: []byte("2026-12-03T10:00:00Z")},
			{Key: "content-type", Value: []byte("application/json")},
		}},
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	want := map[string]*kgo.Record{
		RecordID("foreign", recs[0].Partition, recs[0].Offset): recs[0],
		RecordID("foreign", recs[1].Partition, recs[1].Offset): recs[1],
		"order-123": recs[2],
	}

	sub := newSub(t, tr, "foreign-group")
	ch := subscribe(t, sub, "foreign")
	nacked := map[string]bool{}
	acked := map[string]int{}
	deadline := time.After(20 * time.Second)
	for len(acked) < len(want) {
		select {
		case m := <-ch:
			rec := want[m.UUID]
			if rec == nil {
				t.Fatalf("unexpected id %q, metadata %v", m.UUID, m.Metadata)
			}
			if string(m.Payload) != string(rec.Value) {
				t.Fatalf("id %s: payload %s, want %s", m.UUID, m.Payload, rec.Value)
			}
			if !nacked[m.UUID] {
				nacked[m.UUID] = true
				m.Nack() // delivered again: must keep its id
				continue
			}
			acked[m.UUID]++
			m.Ack()
			if acked[m.UUID] > 1 {
				t.Fatalf("id %s handled twice", m.UUID)
			}
			switch rec {
			case recs[1]:
				if m.Metadata[job.MetaPartitionKey] != "org-9" {
					t.Fatalf("keyed record metadata %v", m.Metadata)
				}
			case recs[2]:
				if m.Metadata[job.MetaEventType] != "shop.order.created" ||
					m.Metadata[job.MetaSource] != "/shop" ||
					m.Metadata[job.MetaOccurredAt] != "2026-12-03T10:00:00Z" {
					t.Fatalf("cloudevents record metadata %v", m.Metadata)
				}
			}
		case <-deadline:
			t.Fatalf("acked %d of %d", len(acked), len(want))
		}
	}
	committed(t, c, "foreign-group", "foreign")

	// Another group, reading the same records, derives the same ids.
	other := ids(receive(t, subscribe(t, newSub(t, tr, "foreign-other"), "foreign"), 3,
		20*time.Second))
	for id := range want {
		if other[id] == 0 {
			t.Fatalf("group 2 ids %v lack %s", other, id)
		}
	}
}

// A record that is not JSON and carries junk headers is delivered like any
// other and does not stall its partition.
func TestMalformedRecordDoesNotStall(t *testing.T) {
	c := kafkatest.Start(t, 1)
	cfg := testConfig(c)
	cfg.Partitions = 1
	tr := newTransport(t, cfg)
	ensure(t, tr, "junk")
	cl := kgoClient(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	bad := &kgo.Record{Topic: "junk", Key: []byte{0xff}, Value: []byte{0xde, 0xad, 0x00, '{'},
		Headers: []kgo.RecordHeader{
			{Key: "", Value: []byte("no key")},
			{Key: wkafka.UUIDHeaderKey, Value: nil},
			{Key: "ce_id", Value: []byte{}},
			{Key: "ce_time", Value: []byte("yesterday")},
			{Key: string([]byte{0xc3, 0x28}), Value: []byte{0xff, 0xfe}},
		}}
	if err := cl.ProduceSync(ctx, bad).FirstErr(); err != nil {
		t.Fatal(err)
	}
	good := message.NewMessage(job.NewID(), []byte(`{"ok":true}`))
	publish(t, tr, "junk", good)

	got := receive(t, subscribe(t, newSub(t, tr, "junk-group"), "junk"), 2, 20*time.Second)
	if got[0].UUID != RecordID("junk", 0, bad.Offset) ||
		string(got[0].Payload) != string(bad.Value) {
		t.Fatalf("malformed record: id %q payload %q", got[0].UUID, got[0].Payload)
	}
	if got[0].Metadata[job.MetaOccurredAt] != "yesterday" {
		t.Fatalf("malformed record metadata %q", got[0].Metadata)
	}
	if got[1].UUID != good.UUID {
		t.Fatalf("second delivery %s, want %s", got[1].UUID, good.UUID)
	}
}
