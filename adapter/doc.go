// Package adapter is sidecarkit's adapter: the log adapter: legacy log files to normalized JSON documents in Elasticsearch.
// The binary is cmd/adapter; its outside face is CONTRACT.md.
package adapter
