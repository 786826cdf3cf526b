package spec

import (
	"fmt"
	"slices"
	"strings"
)

// Flags are each helper's command-line flags, as `<helper> --help` lists
// them (TestFlagsMatchHelpers runs each helper's --help to keep this in step with its own
// config binding). A "<helper>.sidecarkit.io/<flag>" annotation may set any
// of them except the reserved ones.
var Flags = map[string][]string{
	Proxy: strings.Fields(`config admin-addr admin-control-from log-format log-level drain-delay drain-timeout startup-timeout
		mode inbound-addr outbound-addr app upstream source-addr source-addr6 prometheus-addr access-log
		access-log-sample detect-timeout header-read-timeout idle-timeout connect-timeout max-header-bytes
		max-request-body-bytes outbound-passthrough http1-server path-normalization path-escaped-slashes
		inbound-http-ports pprof istio-config istio-namespace istio-labels istio-certs
		tracing-endpoint tracing-base-endpoint tracing-protocol tracing-headers tracing-timeout
		tracing-sampler tracing-sample-ratio tracing-service-name tracing-queue-size tracing-batch-size`),
	Ambassador: strings.Fields(`config admin-addr admin-control-from log-format log-level drain-delay drain-timeout startup-timeout
		vault-addr vault-cacert vault-capath vault-client-cert vault-client-key vault-tls-server-name
		vault-skip-verify vault-namespace vault-timeout auth-method auth-mount kubernetes-role
		kubernetes-jwt-file approle-role-id-file approle-secret-id-file approle-remove-secret-id-file
		token-file token token-sink token-renew-increment secret static-secret-refresh file-mode file-uid
		file-gid require-tmpfs exit-after-render revoke-on-shutdown proxy-addr proxy-auto-auth-token
		proxy-allow-remote proxy-timeout notify-signal notify-process notify-pidfile notify-url
		notify-status notify-command notify-timeout notify-retries notify-debounce notify-splay`),
	Configsync: strings.Fields(`config admin-addr admin-control-from log-format log-level drain-delay drain-timeout startup-timeout
		source dest consul-addr consul-token consul-token-file consul-cacert consul-client-cert
		consul-client-key consul-tls-server-name consul-tls-skip-verify consul-datacenter consistency tree
		file template sync-interval blocking wait-min wait-max mode owner allow-missing skip-bad-keys once
		trim-memory notify-signal notify-process notify-pidfile notify-url notify-status notify-command
		notify-timeout notify-retries notify-debounce notify-splay`),
	Adapter: strings.Fields(`config admin-addr admin-control-from log-format log-level drain-delay drain-timeout startup-timeout
		paths exclude read-from parser parser-regex parsers multiline multiline-start multiline-continue
		multiline-timeout multiline-max-lines timestamp-layout timezone default-level host pod-name pod-namespace
		container-name static-fields output output-file es-url es-username es-password es-api-key es-ca-file
		es-cert-file es-key-file es-insecure-skip-verify es-gzip es-header es-index es-data-stream
		es-timeout dead-letter-file checkpoint-file batch-docs batch-bytes flush-interval queue-batches
		senders retry-initial retry-max max-line-bytes poll-interval scan-interval rotate-wait fsnotify max-open-files`),
	Initnet: strings.Fields(`config envoy-port inbound-capture-port inbound-tunnel-port proxy-uid proxy-gid
		istio-inbound-interception-mode istio-inbound-tproxy-mark istio-inbound-tproxy-route-table
		istio-inbound-ports istio-local-exclude-ports proxy-ports istio-service-cidr
		istio-service-exclude-cidr istio-outbound-ports istio-local-outbound-ports-exclude
		istio-exclude-interfaces kube-virt-interfaces outbound-ipv4-loopback-cidr ipv4 ipv6 dual-stack
		redirect-dns capture-all-dns resolv-conf dns-port drop-invalid backend native-nftables
		force-iptables-binary iptables-restore ip6tables-restore network-namespace dry-run cleanup validate
		reconcile force-apply skip-rule-apply iptables-probe-port probe-timeout log-format log-level
		envoy-user outbound-owner-groups outbound-owner-groups-exclude`),
}

// reserved are flags an annotation may not set, with why.
var reserved = map[string]string{
	"config":               "the injector owns the helper's config file",
	"admin-addr":           "the probes the injector writes use the default admin port",
	"proxy-uid":            "the proxy runs as UID 1337, which initnet must exempt",
	"proxy-gid":            "the proxy runs as GID 1337, which initnet must exempt",
	"dry-run":              "initnet must install the rules",
	"cleanup":              "initnet must install the rules",
	"envoy-port":           "the proxy's listeners are fixed by the injector",
	"mode":                 "the injected proxy is transparent",
	"inbound-addr":         "the proxy's listeners are fixed by the injector",
	"outbound-addr":        "the proxy's listeners are fixed by the injector",
	"inbound-capture-port": "the proxy's listeners are fixed by the injector",
	// Secret values would sit in the pod spec for anyone who can read pods.
	"token":        "a secret in an annotation is readable by anyone who can get pods: use token-file",
	"consul-token": "a secret in an annotation is readable by anyone who can get pods: use consul-token-file",
	"es-password":  "a secret in an annotation is readable by anyone who can get pods: use a file mounted from a Secret",
	"es-api-key":   "a secret in an annotation is readable by anyone who can get pods: use a file mounted from a Secret",
}

// CheckFlag says whether an annotation may set helper's flag: nil, or why not.
func CheckFlag(helper, flag string) error {
	fl, ok := Flags[helper]
	if !ok {
		return fmt.Errorf("unknown helper %q", helper)
	}
	if !slices.Contains(fl, flag) {
		return fmt.Errorf("%s has no flag --%s", helper, flag)
	}
	if why, ok := reserved[flag]; ok && !(helper == Configsync && flag == "mode") {
		return fmt.Errorf("--%s cannot be set by annotation: %s", flag, why)
	}
	return nil
}
