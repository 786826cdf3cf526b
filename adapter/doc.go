// Package adapter is sidecarkit's adapter: the log adapter: legacy log files
// to normalized JSON documents in Elasticsearch. The binary is cmd/adapter;
// its outside face is CONTRACT.md. This package holds the one Config, its
// flags (Bind), its validation and Run, which wires tail → parse → normalize
// → bulk through package pipeline.
package adapter
