package istio

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"gopkg.in/yaml.v3"
)

// Resource is one decoded Istio resource.
type Resource struct {
	Kind       string
	APIVersion string
	Name       string
	Namespace  string // "" until defaulted by the loader (Options.Namespace)
	Labels     map[string]string
	File       string // where it was read ("" for the API server)
	Line       int    // line of the document's first key
	Spec       proto.Message

	spec *yaml.Node // the spec mapping, for line numbers
}

// ID is "Kind namespace/name" ("Kind name" before a namespace is known).
func (r *Resource) ID() string {
	if r.Namespace == "" {
		return r.Kind + " " + r.Name
	}
	return r.Kind + " " + r.Namespace + "/" + r.Name
}

// jsonValue turns a YAML node into values encoding/json can write: mapping
// keys become strings (portLevelMtls has numeric keys), aliases resolve.
func jsonValue(n *yaml.Node) (any, error) {
	switch n.Kind {
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			v, err := jsonValue(n.Content[i+1])
			if err != nil {
				return nil, err
			}
			m[n.Content[i].Value] = v
		}
		return m, nil
	case yaml.SequenceNode:
		l := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			v, err := jsonValue(c)
			if err != nil {
				return nil, err
			}
			l = append(l, v)
		}
		return l, nil
	case yaml.AliasNode:
		return jsonValue(n.Alias)
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil, nil
		}
		return jsonValue(n.Content[0])
	}
	var v any
	if err := n.Decode(&v); err != nil {
		return nil, fmt.Errorf("line %d: %v", n.Line, err)
	}
	return v, nil
}

// Problem is one thing wrong or not supported in a resource, located by file,
// line and field path.
type Problem struct {
	File     string
	Line     int
	Resource string // "VirtualService production/payments" ("" when the document has no usable header)
	Path     string // "spec.http[0].timeout"
	Msg      string
}

func (p Problem) Error() string {
	var b strings.Builder
	if p.File != "" {
		b.WriteString(p.File)
		if p.Line > 0 {
			b.WriteString(":" + strconv.Itoa(p.Line))
		}
		b.WriteString(": ")
	}
	if p.Resource != "" {
		b.WriteString(p.Resource + ": ")
	}
	if p.Path != "" {
		b.WriteString(p.Path + ": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Problems is every problem found, in file and line order.
type Problems []Problem

// Err returns the problems joined, or nil.
func (ps Problems) Err() error {
	if len(ps) == 0 {
		return nil
	}
	errs := make([]error, len(ps))
	for i, p := range ps {
		errs[i] = p
	}
	return errors.Join(errs...)
}

func (ps Problems) sorted() Problems {
	sort.SliceStable(ps, func(i, j int) bool {
		if ps[i].File != ps[j].File {
			return ps[i].File < ps[j].File
		}
		return ps[i].Line < ps[j].Line
	})
	return ps
}

// LoadDir reads every *.yaml, *.yml and *.json file in dir (not
// recursively; Kubernetes ConfigMap volumes' "..data" entries are skipped),
// in name order.
func LoadDir(dir string) ([]*Resource, Problems) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, Problems{{File: dir, Msg: fmt.Sprintf("cannot read the Istio config directory: %v", err)}}
	}
	var rs []*Resource
	var ps Problems
	for _, e := range ents {
		n := e.Name()
		if strings.HasPrefix(n, ".") || e.IsDir() {
			continue
		}
		switch strings.ToLower(filepath.Ext(n)) {
		case ".yaml", ".yml", ".json":
		default:
			continue
		}
		path := filepath.Join(dir, n)
		data, err := os.ReadFile(path)
		if err != nil {
			ps = append(ps, Problem{File: path, Msg: fmt.Sprintf("cannot read: %v", err)})
			continue
		}
		r, p := Decode(path, data)
		rs = append(rs, r...)
		ps = append(ps, p...)
	}
	return rs, ps
}

// Decode reads the resources of one multi-document YAML file (kubectl style:
// "---" separators, comments; a "kind: List" with items is unrolled).
// Fields Istio's schema does not have are problems with their line; so are
// documents of kinds the proxy does not read. Whether the proxy supports
// each field is decided by Translate.
func Decode(file string, data []byte) ([]*Resource, Problems) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var rs []*Resource
	var ps Problems
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			ps = append(ps, Problem{File: file, Msg: "not valid YAML: " + err.Error()})
			break
		}
		if len(doc.Content) == 0 {
			continue
		}
		r, p := decodeObject(file, doc.Content[0])
		rs = append(rs, r...)
		ps = append(ps, p...)
	}
	return rs, ps.sorted()
}

func decodeObject(file string, n *yaml.Node) ([]*Resource, Problems) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil, nil
	}
	if n.Kind != yaml.MappingNode {
		return nil, Problems{{File: file, Line: n.Line, Msg: "a document must be a mapping (apiVersion, kind, metadata, spec)"}}
	}
	var ps Problems
	r := &Resource{File: file, Line: n.Line}
	var meta, spec, items *yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		switch k.Value {
		case "apiVersion":
			r.APIVersion = v.Value
		case "kind":
			r.Kind = v.Value
		case "metadata":
			meta = v
		case "spec":
			spec = v
		case "items":
			items = v
		case "status":
			// written by the control plane (kubectl get -o yaml); not configuration
		default:
			ps = append(ps, Problem{File: file, Line: k.Line, Path: k.Value, Msg: "unknown top-level field (want apiVersion, kind, metadata, spec, status)"})
		}
	}
	if r.Kind == "List" && items != nil {
		var rs []*Resource
		for _, it := range items.Content {
			sub, p := decodeObject(file, it)
			rs = append(rs, sub...)
			ps = append(ps, p...)
		}
		return rs, ps
	}
	ki, ok := kinds[r.Kind]
	if !ok {
		return nil, append(ps, Problem{File: file, Line: n.Line, Path: "kind", Msg: fmt.Sprintf("kind %q is not one the proxy reads (want %s)", r.Kind, strings.Join(KindNames(), ", "))})
	}
	group, version, _ := strings.Cut(r.APIVersion, "/")
	if group != ki.group || !contains(ki.versions, version) {
		ps = append(ps, Problem{File: file, Line: n.Line, Resource: r.Kind, Path: "apiVersion", Msg: fmt.Sprintf("%q: want %s/%s", r.APIVersion, ki.group, strings.Join(ki.versions, " | "))})
	}
	if meta != nil {
		ps = append(ps, decodeMeta(r, meta)...)
	}
	if r.Name == "" {
		ps = append(ps, Problem{File: file, Line: n.Line, Resource: r.Kind, Path: "metadata.name", Msg: "required"})
	}
	r.Spec = ki.spec()
	if spec == nil {
		// An empty spec is meaningful (an AuthorizationPolicy with no rules denies everything).
		return []*Resource{r}, ps
	}
	if spec.Kind != yaml.MappingNode {
		return nil, append(ps, Problem{File: file, Line: spec.Line, Resource: r.ID(), Path: "spec", Msg: "must be a mapping"})
	}
	r.spec = spec
	bad := false
	checkFields(spec, r.Spec.ProtoReflect().Descriptor(), "spec", func(line int, path, msg string) {
		bad = true
		ps = append(ps, Problem{File: file, Line: line, Resource: r.ID(), Path: path, Msg: msg + elsewhere(r.Kind, path)})
	})
	if bad {
		return nil, ps
	}
	v, err := jsonValue(spec)
	if err != nil {
		return nil, append(ps, Problem{File: file, Line: spec.Line, Resource: r.ID(), Path: "spec", Msg: err.Error()})
	}
	js, err := json.Marshal(v)
	if err != nil {
		return nil, append(ps, Problem{File: file, Line: spec.Line, Resource: r.ID(), Path: "spec", Msg: err.Error()})
	}
	if err := protojson.Unmarshal(js, r.Spec); err != nil {
		msg := err.Error()
		if i := strings.Index(msg, "): "); i >= 0 && strings.HasPrefix(msg, "proto:") {
			msg = msg[i+3:]
		}
		return nil, append(ps, Problem{File: file, Line: spec.Line, Resource: r.ID(), Path: "spec", Msg: "bad value: " + msg})
	}
	return []*Resource{r}, ps
}

func decodeMeta(r *Resource, meta *yaml.Node) Problems {
	var ps Problems
	if meta.Kind != yaml.MappingNode {
		return Problems{{File: r.File, Line: meta.Line, Resource: r.Kind, Path: "metadata", Msg: "must be a mapping"}}
	}
	for i := 0; i+1 < len(meta.Content); i += 2 {
		k, v := meta.Content[i], meta.Content[i+1]
		switch k.Value {
		case "name":
			r.Name = v.Value
		case "namespace":
			r.Namespace = v.Value
		case "labels":
			if err := v.Decode(&r.Labels); err != nil {
				ps = append(ps, Problem{File: r.File, Line: v.Line, Resource: r.Kind, Path: "metadata.labels", Msg: "want a map of strings"})
			}
		case "annotations", "uid", "resourceVersion", "generation", "creationTimestamp", "managedFields",
			"generateName", "selfLink", "ownerReferences", "finalizers", "deletionTimestamp", "deletionGracePeriodSeconds":
			// object bookkeeping; nothing the proxy acts on
		default:
			ps = append(ps, Problem{File: r.File, Line: k.Line, Resource: r.Kind, Path: "metadata." + k.Value, Msg: "unknown metadata field"})
		}
	}
	return ps
}

// checkFields walks a YAML mapping against a protobuf message schema and
// reports every key that is not a field there (JSON or proto name), with
// where else in the resource a field of that name exists.
func checkFields(n *yaml.Node, md protoreflect.MessageDescriptor, path string, bad func(line int, path, msg string)) {
	if n.Kind != yaml.MappingNode {
		if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
			return
		}
		bad(n.Line, path, fmt.Sprintf("want a mapping (%s)", md.Name()))
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		p := path + "." + k.Value
		fd := md.Fields().ByJSONName(k.Value)
		if fd == nil {
			fd = md.Fields().ByName(protoreflect.Name(k.Value))
		}
		if fd == nil {
			bad(k.Line, p, fmt.Sprintf("unknown field %q: Istio's %s has no such field", k.Value, md.Name()))
			continue
		}
		walkValue(v, fd, p, bad)
	}
}

func walkValue(v *yaml.Node, fd protoreflect.FieldDescriptor, p string, bad func(line int, path, msg string)) {
	switch {
	case fd.IsMap():
		if v.Kind != yaml.MappingNode {
			if !(v.Kind == yaml.ScalarNode && v.Tag == "!!null") {
				bad(v.Line, p, "want a mapping")
			}
			return
		}
		mv := fd.MapValue()
		if mv.Kind() != protoreflect.MessageKind || leaf(mv.Message()) {
			return
		}
		for i := 0; i+1 < len(v.Content); i += 2 {
			checkFields(v.Content[i+1], mv.Message(), p+"["+v.Content[i].Value+"]", bad)
		}
	case fd.IsList():
		if v.Kind != yaml.SequenceNode {
			if !(v.Kind == yaml.ScalarNode && v.Tag == "!!null") {
				bad(v.Line, p, "want a list")
			}
			return
		}
		if fd.Kind() != protoreflect.MessageKind || leaf(fd.Message()) {
			return
		}
		for i, it := range v.Content {
			checkFields(it, fd.Message(), fmt.Sprintf("%s[%d]", p, i), bad)
		}
	case fd.Kind() == protoreflect.MessageKind && !leaf(fd.Message()):
		checkFields(v, fd.Message(), p, bad)
	}
}

// elsewhere names where in kind's schema a field called like path's last
// element does exist ("; it belongs in spec.http[].timeout"), for the
// common mistake of indenting a key one level off.
func elsewhere(kind, path string) string {
	toks := splitPath(path)
	name := toks[len(toks)-1]
	var at []string
	for _, f := range AllFields(kind) {
		parts := strings.Split(f, ".")
		for i, part := range parts {
			if strings.TrimRight(part, "[]{}") == name {
				at = append(at, "spec."+strings.Join(parts[:i+1], "."))
				break
			}
		}
	}
	if len(at) == 0 {
		return ""
	}
	seen := map[string]bool{}
	var uniq []string
	for _, a := range at {
		if !seen[a] && len(uniq) < 3 {
			seen[a] = true
			uniq = append(uniq, a)
		}
	}
	return "; a field of that name exists at " + strings.Join(uniq, ", ") + " (is it indented at the wrong level?)"
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// lineOf returns the line of the YAML node at path ("spec.http[0].timeout"),
// or of its nearest ancestor in the file.
func (r *Resource) lineOf(path string) int {
	n := r.spec
	if n == nil {
		return r.Line
	}
	line := n.Line
	for _, tok := range splitPath(strings.TrimPrefix(strings.TrimPrefix(path, "spec"), ".")) {
		if tok == "" {
			continue
		}
		var next *yaml.Node
		switch n.Kind {
		case yaml.SequenceNode:
			if i, err := strconv.Atoi(tok); err == nil && i < len(n.Content) {
				next = n.Content[i]
				line = next.Line
			}
		case yaml.MappingNode:
			for j := 0; j+1 < len(n.Content); j += 2 {
				if n.Content[j].Value == tok {
					line = n.Content[j].Line
					next = n.Content[j+1]
					break
				}
			}
		}
		if next == nil {
			return line
		}
		n = next
	}
	return line
}

// splitPath turns "http[0].route[1].weight" into http 0 route 1 weight.
func splitPath(p string) []string {
	p = strings.ReplaceAll(p, "[", ".")
	p = strings.ReplaceAll(p, "]", "")
	return strings.Split(p, ".")
}
