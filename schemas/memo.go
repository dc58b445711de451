package schemas

import (
	"hash/maphash"
	"sync"
)

// memoSize bounds how many validated payloads a registry remembers: four
// times the memory transport's default queue, so a message validated at
// ingest is still remembered when a full backlog reaches the consumer.
const memoSize = 1 << 18

// memo remembers payloads that passed validation, by topic and content, so
// that validating the same bytes again (at ingest, then on consume in the
// same process) costs a hash instead of a parse. The result of validation is
// a function of the schema and the bytes alone, so a hit is the same answer
// the validator would give. Two independent 64-bit hashes and the length key
// each entry; a false hit would need a collision on all three.
type memo struct {
	seed1, seed2 maphash.Seed
	mu           sync.Mutex
	seen         map[memoKey]struct{}
	order        []memoKey // ring of insertion order, for eviction
	next         int
}

type memoKey struct {
	h1, h2 uint64
	n      int
}

func newMemo() *memo {
	return &memo{seed1: maphash.MakeSeed(), seed2: maphash.MakeSeed(),
		seen: make(map[memoKey]struct{}, memoSize), order: make([]memoKey, memoSize)}
}

func (m *memo) key(topic string, payload []byte) memoKey {
	var h1, h2 maphash.Hash
	h1.SetSeed(m.seed1)
	h2.SetSeed(m.seed2)
	h1.WriteString(topic)
	h1.Write(payload)
	h2.WriteString(topic)
	h2.Write(payload)
	return memoKey{h1: h1.Sum64(), h2: h2.Sum64(), n: len(topic) + len(payload)}
}

func (m *memo) has(k memoKey) bool {
	m.mu.Lock()
	_, ok := m.seen[k]
	m.mu.Unlock()
	return ok
}

func (m *memo) add(k memoKey) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.seen[k]; ok {
		return
	}
	if old := m.order[m.next]; old != (memoKey{}) {
		delete(m.seen, old)
	}
	m.order[m.next] = k
	m.next = (m.next + 1) % memoSize
	m.seen[k] = struct{}{}
}
