// Package brain is configsync's in-memory view of what it read from Consul
// (consul-template's "brain"): each dependency — a key, a prefix, a service —
// maps to its last complete answer. Renderers read it; watchers write it.
package brain

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"sync"
)

// Kind is what a dependency reads.
type Kind uint8

// Dependency kinds.
const (
	Key     Kind = iota + 1 // one KV key
	Prefix                  // every key below a prefix (recursive)
	Service                 // healthy instances of a service ("name" or "tag.name")
)

func (k Kind) String() string {
	switch k {
	case Key:
		return "key"
	case Prefix:
		return "prefix"
	case Service:
		return "service"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Dep names one thing read from Consul. It is comparable.
type Dep struct {
	Kind Kind
	Name string
}

func (d Dep) String() string { return d.Kind.String() + " " + fmt.Sprintf("%q", d.Name) }

// KV is one key/value pair.
type KV struct {
	Key   string
	Value []byte
}

// Instance is one healthy service instance.
type Instance struct {
	ID      string
	Name    string
	Node    string
	Address string
	Port    int
	Tags    []string
	Meta    map[string]string
}

// Data is one dependency's answer.
type Data struct {
	Exists    bool       // Key: the key exists
	Value     []byte     // Key: its value
	Pairs     []KV       // Prefix: pairs sorted by key
	Instances []Instance // Service: sorted by node, then ID
}

// Equal reports whether a and b hold the same answer.
func (a Data) Equal(b Data) bool {
	if a.Exists != b.Exists || !bytes.Equal(a.Value, b.Value) || len(a.Pairs) != len(b.Pairs) || len(a.Instances) != len(b.Instances) {
		return false
	}
	for i := range a.Pairs {
		if a.Pairs[i].Key != b.Pairs[i].Key || !bytes.Equal(a.Pairs[i].Value, b.Pairs[i].Value) {
			return false
		}
	}
	for i := range a.Instances {
		x, y := a.Instances[i], b.Instances[i]
		if x.ID != y.ID || x.Name != y.Name || x.Node != y.Node || x.Address != y.Address || x.Port != y.Port ||
			!slices.Equal(x.Tags, y.Tags) || !maps.Equal(x.Meta, y.Meta) {
			return false
		}
	}
	return true
}

// View is what a renderer reads: the answer for d, and whether it is known
// yet (a complete read happened).
type View interface {
	Get(d Dep) (Data, bool)
}

// Brain holds the answers; safe for concurrent use.
type Brain struct {
	mu   sync.RWMutex
	data map[Dep]Data
}

// New returns an empty brain.
func New() *Brain { return &Brain{data: map[Dep]Data{}} }

// Get returns d's answer and whether one is known.
func (b *Brain) Get(d Dep) (Data, bool) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	v, ok := b.data[d]
	return v, ok
}

// Set stores d's answer; it reports whether anything changed (a first answer
// always counts as a change).
func (b *Brain) Set(d Dep, v Data) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	old, ok := b.data[d]
	if ok && old.Equal(v) {
		return false
	}
	b.data[d] = v
	return true
}

// Forget drops d (no output uses it any more).
func (b *Brain) Forget(d Dep) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.data, d)
}

// Map is a View over a plain map, for tests and one-shot renders.
type Map map[Dep]Data

// Get implements View.
func (m Map) Get(d Dep) (Data, bool) { v, ok := m[d]; return v, ok }
