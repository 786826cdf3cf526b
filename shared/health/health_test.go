package health

import (
	"errors"
	"testing"
)

func TestNotReadyBeforeAnyCheck(t *testing.T) {
	s := New()
	if ready, res := s.Check(); ready || len(res) != 1 || res[0].Name != "starting" {
		t.Fatalf("empty state: ready=%v %v", ready, res)
	}
	f := s.NewFlag("first-render")
	if s.Ready() {
		t.Fatal("ready while a flag is pending")
	}
	f.Set(nil)
	if !s.Ready() || !s.Started() {
		t.Fatal("not ready once every check passes")
	}
	f.Set(errors.New("vault down"))
	if s.Ready() || !s.Started() {
		t.Fatal("started must latch; ready must follow the check")
	}
	f.Set(nil)
	s.SetDraining()
	if s.Ready() {
		t.Fatal("ready while draining")
	}
}
