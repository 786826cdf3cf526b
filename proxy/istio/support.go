package istio

import (
	"fmt"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
	"gopkg.in/yaml.v3"
)

// supported lists, per kind, the field paths (AllFields' notation) the
// translator acts on. A field present in a resource and not listed here is
// a problem: the proxy never ignores configuration silently. A structured
// field is accepted when some field below it is supported; its children
// are then checked one by one. Values a supported field may not take (an
// enum the proxy does not implement) are checked by the translator.
var supported = map[string][]string{
	KindVirtualService: {
		"hosts[]", "gateways[]", "exportTo[]",
		"http[].name",
		"http[].match[].name", "http[].match[].uri.exact", "http[].match[].uri.prefix",
		"http[].match[].headers{}.exact", "http[].match[].headers{}.prefix",
		"http[].match[].withoutHeaders{}",
		"http[].match[].port", "http[].match[].sourceLabels", "http[].match[].sourceNamespace", "http[].match[].gateways[]",
		"http[].route[].destination.host", "http[].route[].destination.subset", "http[].route[].destination.port.number",
		"http[].route[].weight",
		"http[].route[].headers.request.set", "http[].route[].headers.request.add", "http[].route[].headers.request.remove[]",
		"http[].route[].headers.response.set", "http[].route[].headers.response.add", "http[].route[].headers.response.remove[]",
		"http[].timeout",
		"http[].retries.attempts", "http[].retries.perTryTimeout", "http[].retries.retryOn",
		"http[].headers.request.set", "http[].headers.request.add", "http[].headers.request.remove[]",
		"http[].headers.response.set", "http[].headers.response.add", "http[].headers.response.remove[]",
		"http[].fault.delay.fixedDelay", "http[].fault.delay.percentage.value", "http[].fault.delay.percent",
		"http[].fault.abort.httpStatus", "http[].fault.abort.percentage.value",
		"tls[].match[].sniHosts[]", "tls[].match[].port",
		"tls[].route[].destination.host", "tls[].route[].destination.port.number", "tls[].route[].weight",
	},
	KindDestinationRule: {
		"host", "exportTo[]",
		"trafficPolicy.loadBalancer.simple",
		"trafficPolicy.connectionPool.tcp.maxConnections", "trafficPolicy.connectionPool.tcp.connectTimeout",
		"trafficPolicy.connectionPool.http.http1MaxPendingRequests", "trafficPolicy.connectionPool.http.http2MaxRequests",
		"trafficPolicy.connectionPool.http.maxRetries", "trafficPolicy.connectionPool.http.idleTimeout",
		"trafficPolicy.connectionPool.http.h2UpgradePolicy",
		"trafficPolicy.outlierDetection.consecutiveErrors", "trafficPolicy.outlierDetection.consecutiveGatewayErrors",
		"trafficPolicy.outlierDetection.consecutive5xxErrors", "trafficPolicy.outlierDetection.interval",
		"trafficPolicy.outlierDetection.baseEjectionTime", "trafficPolicy.outlierDetection.maxEjectionPercent",
		"trafficPolicy.tls.mode", "trafficPolicy.tls.clientCertificate", "trafficPolicy.tls.privateKey",
		"trafficPolicy.tls.caCertificates", "trafficPolicy.tls.subjectAltNames[]", "trafficPolicy.tls.sni",
		"trafficPolicy.portLevelSettings[].port.number",
		"trafficPolicy.portLevelSettings[].loadBalancer.simple",
		"trafficPolicy.portLevelSettings[].connectionPool.tcp.maxConnections", "trafficPolicy.portLevelSettings[].connectionPool.tcp.connectTimeout",
		"trafficPolicy.portLevelSettings[].connectionPool.http.http1MaxPendingRequests", "trafficPolicy.portLevelSettings[].connectionPool.http.http2MaxRequests",
		"trafficPolicy.portLevelSettings[].connectionPool.http.maxRetries", "trafficPolicy.portLevelSettings[].connectionPool.http.idleTimeout",
		"trafficPolicy.portLevelSettings[].connectionPool.http.h2UpgradePolicy",
		"trafficPolicy.portLevelSettings[].outlierDetection.consecutiveErrors", "trafficPolicy.portLevelSettings[].outlierDetection.consecutiveGatewayErrors",
		"trafficPolicy.portLevelSettings[].outlierDetection.consecutive5xxErrors", "trafficPolicy.portLevelSettings[].outlierDetection.interval",
		"trafficPolicy.portLevelSettings[].outlierDetection.baseEjectionTime", "trafficPolicy.portLevelSettings[].outlierDetection.maxEjectionPercent",
		"trafficPolicy.portLevelSettings[].tls.mode", "trafficPolicy.portLevelSettings[].tls.clientCertificate", "trafficPolicy.portLevelSettings[].tls.privateKey",
		"trafficPolicy.portLevelSettings[].tls.caCertificates", "trafficPolicy.portLevelSettings[].tls.subjectAltNames[]", "trafficPolicy.portLevelSettings[].tls.sni",
		"subsets[].name", "subsets[].labels",
	},
	KindSidecar: {
		"workloadSelector.labels", "egress[].hosts[]", "outboundTrafficPolicy.mode",
	},
	KindServiceEntry: {
		"hosts[]", "ports[].number", "ports[].protocol", "ports[].name", "ports[].targetPort",
		"location", "resolution", "exportTo[]",
		"endpoints[].address", "endpoints[].ports", "endpoints[].labels", "endpoints[].weight",
	},
	KindPeerAuthentication: {
		"selector.matchLabels", "mtls.mode", "portLevelMtls{}.mode",
	},
	KindAuthorizationPolicy: {
		"selector.matchLabels", "action",
		"rules[].from[].source.principals[]", "rules[].from[].source.notPrincipals[]",
		"rules[].from[].source.requestPrincipals[]", "rules[].from[].source.notRequestPrincipals[]",
		"rules[].from[].source.namespaces[]", "rules[].from[].source.notNamespaces[]",
		"rules[].from[].source.ipBlocks[]", "rules[].from[].source.notIpBlocks[]",
		"rules[].to[].operation.hosts[]", "rules[].to[].operation.notHosts[]",
		"rules[].to[].operation.methods[]", "rules[].to[].operation.notMethods[]",
		"rules[].to[].operation.paths[]", "rules[].to[].operation.notPaths[]",
		"rules[].when[].key", "rules[].when[].values[]", "rules[].when[].notValues[]",
	},
	KindRequestAuthentication: {
		"selector.matchLabels",
		"jwtRules[].issuer", "jwtRules[].audiences[]", "jwtRules[].jwksUri",
		"jwtRules[].fromHeaders[].name", "jwtRules[].fromHeaders[].prefix", "jwtRules[].fromParams[]",
		"jwtRules[].forwardOriginalToken",
		"jwtRules[].outputClaimToHeaders[].header", "jwtRules[].outputClaimToHeaders[].claim",
	},
}

// Supported reports whether the proxy implements kind's field at pattern
// (AllFields' notation). A structured field counts as supported when
// anything below it is.
func Supported(kind, pattern string) bool {
	for _, s := range supported[kind] {
		if s == pattern || strings.HasPrefix(s, pattern+".") || strings.HasPrefix(s, pattern+"{}") {
			return true
		}
	}
	return false
}

// checkSupported reports every field present in r's spec that the proxy
// does not implement, with its path and line.
func checkSupported(r *Resource) Problems {
	if r.spec == nil {
		return nil
	}
	var ps Problems
	var walk func(n *yaml.Node, md protoreflect.MessageDescriptor, path, pattern string)
	walk = func(n *yaml.Node, md protoreflect.MessageDescriptor, path, pattern string) {
		if n.Kind != yaml.MappingNode {
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			fd := md.Fields().ByJSONName(k.Value)
			if fd == nil {
				fd = md.Fields().ByName(protoreflect.Name(k.Value))
			}
			if fd == nil {
				continue // Decode reported it
			}
			pat := pattern + fd.JSONName()
			if fd.IsList() {
				pat += "[]"
			}
			p := path + "." + k.Value
			if !Supported(r.Kind, pat) {
				ps = append(ps, Problem{File: r.File, Line: k.Line, Resource: r.ID(), Path: p, Msg: "not supported by the proxy"})
				continue
			}
			switch {
			case fd.IsMap():
				mv := fd.MapValue()
				if mv.Kind() == protoreflect.MessageKind && !leaf(mv.Message()) && v.Kind == yaml.MappingNode {
					for j := 0; j+1 < len(v.Content); j += 2 {
						walk(v.Content[j+1], mv.Message(), p+"["+v.Content[j].Value+"]", pat+"{}.")
					}
				}
			case fd.IsList():
				if fd.Kind() == protoreflect.MessageKind && !leaf(fd.Message()) {
					for j, it := range v.Content {
						walk(it, fd.Message(), fmt.Sprintf("%s[%d]", p, j), pat+".")
					}
				}
			case fd.Kind() == protoreflect.MessageKind && !leaf(fd.Message()):
				walk(v, fd.Message(), p, pat+".")
			}
		}
	}
	walk(r.spec, r.Spec.ProtoReflect().Descriptor(), "spec", "")
	return ps
}
