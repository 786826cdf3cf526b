// A Go program that logs through the log package (each record is one
// Write, which it also records, base64 per line) and then crashes the way
// argv[3] says: "panic" (a panic in deep recursion, then a second panic in
// a deferred call with a multi-line error) or "fatal" (the runtime's
// deadlock fatal error). Run it with GOTRACEBACK=system.
package main

import (
	"encoding/base64"
	"fmt"
	"log"
	"os"
	"sync"
)

type tee struct {
	f, recs *os.File
}

func (t tee) Write(p []byte) (int, error) {
	n, err := t.f.Write(p)
	rec := p
	if len(rec) > 0 && rec[len(rec)-1] == '\n' {
		rec = rec[:len(rec)-1]
	}
	t.recs.WriteString(base64.StdEncoding.EncodeToString(rec) + "\n")
	return n, err
}

type ledgerError struct{ msg string }

func (e *ledgerError) Error() string { return e.msg }

func deep(n int) {
	if n == 0 {
		panic(&ledgerError{"ledger out of balance"})
	}
	deep(n - 1)
}

func main() {
	f, err := os.OpenFile(os.Args[1], os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		panic(err)
	}
	recs, err := os.Create(os.Args[2])
	if err != nil {
		panic(err)
	}
	l := log.New(tee{f, recs}, "", log.LstdFlags|log.Lmicroseconds)
	l.Printf("starting %s", os.Args[3])
	l.Printf("a message\nwith a second line\n\tand an indented third")
	l.Printf("error: %v", fmt.Errorf("wrapped: %w", &ledgerError{"disk\nfull"}))
	var wg sync.WaitGroup
	block := make(chan struct{})
	for i := 0; i < 3; i++ { // goroutines for the traceback to show
		wg.Add(1)
		go func() { wg.Done(); <-block }()
	}
	wg.Wait()
	switch os.Args[3] {
	case "panic":
		defer func() {
			panic(fmt.Errorf("cleanup failed: %w", &ledgerError{"two\nlines"}))
		}()
		deep(150) // deep enough for "...N frames elided..."
	case "fatal":
		close(block)
		select {} // all goroutines asleep: fatal error
	}
}
