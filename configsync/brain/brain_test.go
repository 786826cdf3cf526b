package brain

import "testing"

func TestSetReportsChanges(t *testing.T) {
	b := New()
	d := Dep{Kind: Prefix, Name: "p/"}
	if _, ok := b.Get(d); ok {
		t.Fatal("unknown dependency is known")
	}
	v := Data{Pairs: []KV{{Key: "p/a", Value: []byte("1")}}}
	if !b.Set(d, v) {
		t.Fatal("a first answer is a change")
	}
	if b.Set(d, Data{Pairs: []KV{{Key: "p/a", Value: []byte("1")}}}) {
		t.Fatal("the same answer is no change")
	}
	if !b.Set(d, Data{Pairs: []KV{{Key: "p/a", Value: []byte("2")}}}) {
		t.Fatal("a new value is a change")
	}
	// An empty answer is known, and differs from a missing one.
	if !b.Set(d, Data{}) {
		t.Fatal("empty prefix is a change")
	}
	if got, ok := b.Get(d); !ok || len(got.Pairs) != 0 {
		t.Fatalf("got %+v %v", got, ok)
	}
	b.Forget(d)
	if _, ok := b.Get(d); ok {
		t.Fatal("forgotten dependency still known")
	}
}

func TestEqualServices(t *testing.T) {
	a := Data{Instances: []Instance{{ID: "1", Port: 80, Tags: []string{"x"}, Meta: map[string]string{"k": "v"}}}}
	b := Data{Instances: []Instance{{ID: "1", Port: 80, Tags: []string{"x"}, Meta: map[string]string{"k": "v"}}}}
	if !a.Equal(b) {
		t.Fatal("equal instances differ")
	}
	b.Instances[0].Meta = map[string]string{"k": "w"}
	if a.Equal(b) {
		t.Fatal("different meta is equal")
	}
	if (Data{Exists: true}).Equal(Data{}) {
		t.Fatal("existing empty key equals a missing key")
	}
}
