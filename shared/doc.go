// Package shared holds what every sidecarkit helper needs exactly once: the
// lifecycle contract (probes, drain, wait, admin server, metrics), the config
// loader, logging, atomic publishing and app notification. Nothing in it is
// specific to one helper. See the subpackages.
package shared
