package kafka

import (
	"errors"
	"slices"
	"strconv"
	"strings"

	"github.com/IBM/sarama"
	wkafka "github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/millrace/millrace/job"
)

// Record headers of the CloudEvents Kafka protocol binding (binary content
// mode), written beside Watermill's own so that consumers outside Millrace,
// in any language, can read our records as CloudEvents.
const (
	HeaderSpecVersion = "ce_specversion"
	HeaderID          = "ce_id"
	HeaderType        = "ce_type"
	HeaderTime        = "ce_time"
	HeaderSource      = "ce_source"
	HeaderContentType = "content-type"
)

// envelope lists the headers the marshaler derives from the message itself;
// metadata under these names is not written again, and the unmarshaler does
// not copy them into metadata, so a message keeps the same metadata across
// any number of trips through Kafka.
var envelope = []string{wkafka.UUIDHeaderKey, HeaderSpecVersion, HeaderID, HeaderType,
	HeaderTime, HeaderSource, HeaderContentType}

// Marshaler turns Watermill messages into Kafka records and back.
//
// A record's key is the message's partition_key metadata, else its
// organisation_id, else its UUID: Kafka orders records per partition, the
// key picks the partition, so one organisation's events stay in order while
// events without an organisation spread over every partition. (An empty
// key would be a key too, sending all of them to one partition.)
//
// Metadata becomes headers, the UUID goes in Watermill's header, and the
// CloudEvents headers ce_specversion, ce_id, ce_type (event_type), ce_time
// (occurred_at), ce_source (source) and content-type are added. ce_type,
// ce_time and ce_source are written only when the metadata has them; every
// event Millrace builds has all three.
//
// Unmarshal never fails: watermill-kafka stops consuming a partition for
// good on an unmarshal error, so any record, however foreign or malformed,
// becomes a message, and what is wrong with it is left to the handler
// chain (whose validation poisons it). See Unmarshal.
type Marshaler struct{}

var _ wkafka.MarshalerUnmarshaler = Marshaler{}

// Marshal builds the sarama record of msg for topic.
func (Marshaler) Marshal(topic string, msg *message.Message) (*sarama.ProducerMessage, error) {
	h := make([]sarama.RecordHeader, 0, len(msg.Metadata)+len(envelope))
	err := eachHeader(msg, func(k, v string) {
		h = append(h, sarama.RecordHeader{Key: []byte(k), Value: []byte(v)})
	})
	if err != nil {
		return nil, err
	}
	return &sarama.ProducerMessage{
		Topic:   topic,
		Key:     sarama.StringEncoder(PartitionKey(msg)),
		Value:   sarama.ByteEncoder(msg.Payload),
		Headers: h,
	}, nil
}

// Record builds the franz-go record of msg for topic: the same key and
// headers as Marshal.
func (Marshaler) Record(topic string, msg *message.Message) (*kgo.Record, error) {
	h := make([]kgo.RecordHeader, 0, len(msg.Metadata)+len(envelope))
	err := eachHeader(msg, func(k, v string) {
		h = append(h, kgo.RecordHeader{Key: k, Value: []byte(v)})
	})
	if err != nil {
		return nil, err
	}
	return &kgo.Record{Topic: topic, Key: []byte(PartitionKey(msg)), Value: msg.Payload,
		Headers: h}, nil
}

// eachHeader calls add with each header of msg's record, in a fixed order:
// Watermill's UUID header, the CloudEvents ones, then the rest of the
// metadata sorted by key.
func eachHeader(msg *message.Message, add func(k, v string)) error {
	if msg.UUID == "" {
		return errors.New("marshal kafka record: message has no UUID")
	}
	add(wkafka.UUIDHeaderKey, msg.UUID)
	add(HeaderSpecVersion, "1.0")
	add(HeaderID, msg.UUID)
	add(HeaderContentType, "application/json")
	for _, ce := range [...]struct{ header, meta string }{{HeaderType, job.MetaEventType},
		{HeaderTime, job.MetaOccurredAt}, {HeaderSource, job.MetaSource}} {
		if v := msg.Metadata.Get(ce.meta); v != "" {
			add(ce.header, v)
		}
	}
	keys := make([]string, 0, len(msg.Metadata))
	for k := range msg.Metadata {
		if k != "" && !slices.Contains(envelope, k) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		add(k, msg.Metadata[k])
	}
	return nil
}

// PartitionKey is the record key of msg: partition_key, else
// organisation_id, else the UUID; never empty for a message with a UUID.
func PartitionKey(msg *message.Message) string {
	if k := msg.Metadata.Get(job.MetaPartitionKey); k != "" {
		return k
	}
	if k := msg.Metadata.Get(job.MetaOrganisationID); k != "" {
		return k
	}
	return msg.UUID
}

// Unmarshal turns any record into a message and never returns an error.
//
// The id is Watermill's UUID header, else ce_id, else derived from the
// record's topic, partition and offset, so a foreign record keeps its id
// when it is delivered again and handlers can deduplicate it. ce_type,
// ce_time and ce_source fill event_type, occurred_at and source when those
// headers are absent, and the record key fills partition_key. Every other
// header is copied as metadata (later duplicates win, empty keys are
// dropped, invalid UTF-8 is replaced so the metadata can be stored as
// JSON). The payload is passed through untouched, JSON or not.
func (Marshaler) Unmarshal(rec *sarama.ConsumerMessage) (*message.Message, error) {
	md := make(message.Metadata, len(rec.Headers)+1)
	var wmID, ceID string
	ce := map[string]string{}
	for _, hd := range rec.Headers {
		if hd == nil || len(hd.Key) == 0 {
			continue
		}
		k, v := clean(hd.Key), clean(hd.Value)
		switch k {
		case wkafka.UUIDHeaderKey:
			wmID = strings.TrimSpace(v)
		case HeaderID:
			ceID = strings.TrimSpace(v)
		case HeaderType, HeaderTime, HeaderSource:
			ce[k] = v
		case HeaderSpecVersion, HeaderContentType:
			// Regenerated by Marshal; not message metadata.
		default:
			md[k] = v
		}
	}
	for hk, mk := range map[string]string{HeaderType: job.MetaEventType,
		HeaderTime: job.MetaOccurredAt, HeaderSource: job.MetaSource} {
		if md[mk] == "" && ce[hk] != "" {
			md[mk] = ce[hk]
		}
	}
	if md[job.MetaPartitionKey] == "" && len(rec.Key) > 0 {
		md[job.MetaPartitionKey] = clean(rec.Key)
	}
	id := wmID
	if id == "" {
		id = ceID
	}
	if id == "" {
		id = RecordID(rec.Topic, rec.Partition, rec.Offset)
	}
	msg := message.NewMessage(id, rec.Value)
	msg.Metadata = md
	return msg, nil
}

// RecordID is the id of a record that carries none: a name-based UUID of
// its topic, partition and offset, the same on every delivery.
func RecordID(topic string, partition int32, offset int64) string {
	return job.StableID("kafka", topic, strconv.FormatInt(int64(partition), 10),
		strconv.FormatInt(offset, 10))
}

func clean(b []byte) string { return strings.ToValidUTF8(string(b), "\uFFFD") }
