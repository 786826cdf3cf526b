//go:build tools

// Package victorialogs pins VictoriaLogs (a log database that accepts the
// Elasticsearch bulk API) so the adapter's tests have a real sink.
package victorialogs

import _ "github.com/VictoriaMetrics/VictoriaMetrics/app/victoria-logs"
