// Package schemas holds one JSON Schema (draft 2020-12) per topic, embedded in
// the binary, with valid and invalid examples for each. A topic exists for
// Millrace exactly when it has a schema here: publishing anywhere else is an
// error.
package schemas

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"path"
	"sort"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

//go:embed topics/*.json
var topicFS embed.FS

//go:embed examples
var exampleFS embed.FS

// ErrUnknownTopic is returned for a topic that has no schema.
var ErrUnknownTopic = errors.New("unknown topic")

// ErrMalformedJSON is returned for a payload that is not JSON at all.
var ErrMalformedJSON = errors.New("malformed JSON")

// Problem is one schema violation: where in the payload, and what is wrong.
type Problem struct {
	Path    string `json:"path"`
	Message string `json:"message"`
}

// ValidationError lists every way a payload breaks its topic's schema.
type ValidationError struct {
	Topic    string
	Problems []Problem
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.Path + ": " + p.Message
	}
	return fmt.Sprintf("payload does not match schema of %s: %s", e.Topic, strings.Join(parts, "; "))
}

// Registry validates payloads against the embedded schemas.
type Registry struct {
	schemas map[string]*jsonschema.Schema
	topics  []string
	memo    *memo
}

// Load compiles every embedded schema. A schema that does not compile is a
// build defect, so callers usually go through Default.
func Load() (*Registry, error) {
	return load(topicFS, "topics")
}

// LoadFS compiles the schemas named <topic>.json in dir of fsys. Tests and
// benchmarks use it for registries of their own topics.
func LoadFS(fsys fs.FS, dir string) (*Registry, error) { return load(fsys, dir) }

func load(fsys fs.FS, dir string) (*Registry, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("read schemas: %w", err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	r := &Registry{schemas: map[string]*jsonschema.Schema{}, memo: newMemo()}
	for _, e := range entries {
		topic, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok {
			continue
		}
		raw, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("read schema %s: %w", topic, err)
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("parse schema %s: %w", topic, err)
		}
		url := "millrace:///topics/" + topic + ".json"
		if err := c.AddResource(url, doc); err != nil {
			return nil, fmt.Errorf("add schema %s: %w", topic, err)
		}
		sch, err := c.Compile(url)
		if err != nil {
			return nil, fmt.Errorf("compile schema %s: %w", topic, err)
		}
		r.schemas[topic] = sch
		r.topics = append(r.topics, topic)
	}
	sort.Strings(r.topics)
	return r, nil
}

var defaultRegistry = func() *Registry {
	r, err := Load()
	if err != nil {
		panic(err)
	}
	return r
}()

// Default returns the registry of the embedded schemas.
func Default() *Registry { return defaultRegistry }

// Topics returns every topic with a schema, sorted.
func (r *Registry) Topics() []string { return append([]string(nil), r.topics...) }

// Has reports whether topic has a schema.
func (r *Registry) Has(topic string) bool {
	_, ok := r.schemas[topic]
	return ok
}

// Validate checks payload against the schema of topic. It returns an error
// wrapping ErrUnknownTopic or ErrMalformedJSON, or a *ValidationError.
func (r *Registry) Validate(topic string, payload []byte) error {
	sch, ok := r.schemas[topic]
	if !ok {
		return fmt.Errorf("%w: %q", ErrUnknownTopic, topic)
	}
	key := r.memo.key(topic, payload)
	if r.memo.has(key) {
		return nil
	}
	var doc any
	if err := json.Unmarshal(payload, &doc); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformedJSON, err)
	}
	err := sch.Validate(integers(doc))
	if err == nil {
		r.memo.add(key)
		return nil
	}
	var verr *jsonschema.ValidationError
	if !errors.As(err, &verr) {
		return fmt.Errorf("validate %s: %w", topic, err)
	}
	return &ValidationError{Topic: topic, Problems: problems(verr)}
}

// problems flattens the library's error tree into the leaves, which name the
// failing payload paths; the inner nodes only repeat them.
func problems(verr *jsonschema.ValidationError) []Problem {
	out := verr.BasicOutput()
	var ps []Problem
	seen := map[Problem]bool{}
	for _, u := range out.Errors {
		if u.Error == nil || len(u.Errors) > 0 {
			continue
		}
		p := Problem{Path: u.InstanceLocation, Message: u.Error.String()}
		if p.Path == "" {
			p.Path = "/"
		}
		if !seen[p] {
			seen[p] = true
			ps = append(ps, p)
		}
	}
	if len(ps) == 0 && out.Error != nil {
		ps = append(ps, Problem{Path: "/", Message: out.Error.String()})
	}
	return ps
}

// Example is one sample payload for a topic.
type Example struct {
	Topic   string
	Name    string
	Valid   bool
	Payload []byte
}

// Examples returns the embedded examples of topic: files named valid*.json
// under examples/<topic>/ must pass, files named invalid*.json must fail.
func Examples(topic string) ([]Example, error) {
	dir := path.Join("examples", topic)
	entries, err := fs.ReadDir(exampleFS, dir)
	if err != nil {
		return nil, fmt.Errorf("read examples of %s: %w", topic, err)
	}
	var exs []Example
	for _, e := range entries {
		raw, err := fs.ReadFile(exampleFS, path.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("read example %s: %w", e.Name(), err)
		}
		exs = append(exs, Example{
			Topic:   topic,
			Name:    e.Name(),
			Valid:   strings.HasPrefix(e.Name(), "valid"),
			Payload: raw,
		})
	}
	return exs, nil
}

// integers replaces the whole numbers of a decoded document with int64. The
// validator checks "type": "integer" and bounds by printing the number and
// parsing it as a rational, which is cheapest for an int64; on consume that
// check runs for every message. Numbers beyond ±2^53 lose precision as
// float64, which no schema here depends on.
func integers(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = integers(e)
		}
	case []any:
		for i, e := range x {
			x[i] = integers(e)
		}
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<63 {
			return int64(x)
		}
	}
	return v
}
