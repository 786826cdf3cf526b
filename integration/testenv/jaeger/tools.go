//go:build tools

// Package jaeger pins Jaeger all-in-one (collector with OTLP receivers,
// in-memory storage and the query API) so the proxy's tracing tests read
// their spans back from a real trace store.
package jaeger

import _ "github.com/jaegertracing/jaeger/cmd/all-in-one"
