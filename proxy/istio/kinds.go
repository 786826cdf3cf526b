package istio

import (
	"sort"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	networking "istio.io/api/networking/v1alpha3"
	security "istio.io/api/security/v1beta1"
)

// Kinds the proxy reads, with the API groups and versions it accepts.
const (
	KindVirtualService        = "VirtualService"
	KindDestinationRule       = "DestinationRule"
	KindSidecar               = "Sidecar"
	KindServiceEntry          = "ServiceEntry"
	KindPeerAuthentication    = "PeerAuthentication"
	KindAuthorizationPolicy   = "AuthorizationPolicy"
	KindRequestAuthentication = "RequestAuthentication"
)

type kindInfo struct {
	group    string
	versions []string
	spec     func() proto.Message
}

var networkingVersions = []string{"v1", "v1beta1", "v1alpha3"}
var securityVersions = []string{"v1", "v1beta1"}

// kinds is read-only after init: the schema of every kind the proxy reads.
var kinds = map[string]kindInfo{
	KindVirtualService:        {"networking.istio.io", networkingVersions, func() proto.Message { return &networking.VirtualService{} }},
	KindDestinationRule:       {"networking.istio.io", networkingVersions, func() proto.Message { return &networking.DestinationRule{} }},
	KindSidecar:               {"networking.istio.io", networkingVersions, func() proto.Message { return &networking.Sidecar{} }},
	KindServiceEntry:          {"networking.istio.io", networkingVersions, func() proto.Message { return &networking.ServiceEntry{} }},
	KindPeerAuthentication:    {"security.istio.io", securityVersions, func() proto.Message { return &security.PeerAuthentication{} }},
	KindAuthorizationPolicy:   {"security.istio.io", securityVersions, func() proto.Message { return &security.AuthorizationPolicy{} }},
	KindRequestAuthentication: {"security.istio.io", securityVersions, func() proto.Message { return &security.RequestAuthentication{} }},
}

// KindNames lists the kinds in a stable order.
func KindNames() []string {
	var ks []string
	for k := range kinds {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// leaf reports whether a message is treated as one value (the protobuf
// well-known types: Duration, wrappers, Struct).
func leaf(md protoreflect.MessageDescriptor) bool {
	return strings.HasPrefix(string(md.FullName()), "google.protobuf.")
}

// AllFields lists every field path of kind's spec (JSON names, "." between
// levels, "[]" after a list, "{}" after a map with structured values),
// deprecated ones included.
func AllFields(kind string) []string {
	ki, ok := kinds[kind]
	if !ok {
		return nil
	}
	var out []string
	var walk func(md protoreflect.MessageDescriptor, prefix string, depth int)
	walk = func(md protoreflect.MessageDescriptor, prefix string, depth int) {
		fs := md.Fields()
		for i := 0; i < fs.Len(); i++ {
			fd := fs.Get(i)
			p := prefix + fd.JSONName()
			if fd.IsList() {
				p += "[]"
			}
			var sub protoreflect.MessageDescriptor
			switch {
			case fd.IsMap():
				if v := fd.MapValue(); v.Kind() == protoreflect.MessageKind && !leaf(v.Message()) {
					sub = v.Message()
					p += "{}"
				}
			case fd.Kind() == protoreflect.MessageKind && !leaf(fd.Message()):
				sub = fd.Message()
			}
			if sub == nil || depth > 8 {
				out = append(out, p)
				continue
			}
			walk(sub, p+".", depth+1)
		}
	}
	walk(ki.spec().ProtoReflect().Descriptor(), "", 0)
	return out
}
