package job

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
)

// Event is a message on its way to a topic.
type Event struct {
	ID       string
	Topic    string
	Payload  []byte
	Metadata map[string]string
}

// namespace scopes the name-based ids Millrace derives, so that they cannot
// collide with ids other systems derive the same way.
var namespace = uuid.MustParse("6f1c2a8e-3b57-4d0e-9a61-0c4d9f2e7b13")

// StableID derives a UUID from parts: the same parts give the same id in
// every process and on every run. Ingest keys, cron slots and follow-up
// deliveries use it so that a retry of the same request becomes the same
// message, which handlers then deduplicate.
func StableID(parts ...string) string {
	return uuid.NewSHA1(namespace, []byte(strings.Join(parts, "\x00"))).String()
}

// NewID returns a fresh time-ordered UUID (version 7).
func NewID() string {
	id, err := uuid.NewV7()
	if err != nil {
		return uuid.NewString()
	}
	return id.String()
}

// NewEvent builds an event for topic with the envelope every message carries.
// When ctx carries a message being handled, the event continues its
// correlation, names it as cause and inherits its organisation. The trace
// context of ctx is written to the metadata so the consumer continues the
// trace. id may be empty for a fresh one.
func NewEvent(ctx context.Context, id, topic string, payload []byte, source string, now time.Time) Event {
	if id == "" {
		id = NewID()
	}
	md := map[string]string{
		MetaEventType:     topic,
		MetaOccurredAt:    now.UTC().Format(time.RFC3339Nano),
		MetaSchemaVersion: "1",
		MetaSource:        source,
	}
	if parent, ok := MessageFrom(ctx); ok {
		md[MetaCausationID] = parent.ID
		md[MetaCorrelationID] = parent.Metadata[MetaCorrelationID]
		md[MetaOrganisationID] = parent.OrganisationID()
	}
	if org := PayloadOrganisation(payload); org != "" {
		md[MetaOrganisationID] = org
	}
	if md[MetaOrganisationID] == "" {
		delete(md, MetaOrganisationID)
	} else {
		md[MetaPartitionKey] = md[MetaOrganisationID]
	}
	if md[MetaCorrelationID] == "" {
		md[MetaCorrelationID] = id
	}
	InjectTrace(ctx, md)
	return Event{ID: id, Topic: topic, Payload: payload, Metadata: md}
}

// InjectTrace writes the W3C trace context of ctx into md.
func InjectTrace(ctx context.Context, md map[string]string) {
	otel.GetTextMapPropagator().Inject(ctx, propagation.MapCarrier(md))
}

// ExtractTrace returns ctx continuing the trace whose context md carries.
func ExtractTrace(ctx context.Context, md map[string]string) context.Context {
	return otel.GetTextMapPropagator().Extract(ctx, propagation.MapCarrier(md))
}

// PayloadOrganisation returns the top-level organisation_id of a JSON
// payload, or "" when there is none.
func PayloadOrganisation(payload []byte) string {
	var v struct {
		OrganisationID string `json:"organisation_id"`
	}
	if json.Unmarshal(payload, &v) != nil {
		return ""
	}
	return v.OrganisationID
}

// Attempts returns the attempt count recorded in poison metadata, or 0.
func Attempts(md map[string]string) int {
	n, _ := strconv.Atoi(md[MetaPoisonAttempts])
	return n
}
