package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// getCmd prints a URL's body, like a minimal curl, for the client container
// outside the pod (the images have no shell and no curl). Exit 1 on a non-2xx.
func getCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("get", stderr)
	method := fs.String("X", "GET", "HTTP method")
	data := fs.String("d", "", "request body")
	head := fs.Bool("i", false, "print the status line and response headers")
	timeout := fs.Duration("timeout", 10*time.Second, "request timeout")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("want exactly one URL, got %q", fs.Args())
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	var body io.Reader
	if *data != "" {
		body = strings.NewReader(*data)
	}
	req, err := http.NewRequestWithContext(ctx, *method, fs.Arg(0), body)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if *head {
		fmt.Fprintf(stdout, "%s %s\n", resp.Proto, resp.Status)
		resp.Header.Write(stdout)
		fmt.Fprintln(stdout)
	}
	if _, err := io.Copy(stdout, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s", *method, fs.Arg(0), resp.Status)
	}
	return nil
}
