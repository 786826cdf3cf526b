package syncer

import (
	"fmt"

	"github.com/sidecarkit/sidecarkit/configsync/brain"
	"github.com/sidecarkit/sidecarkit/configsync/render"
	"github.com/sidecarkit/sidecarkit/shared/publish"
)

// Kind is how an output is rendered.
type Kind uint8

// Output kinds.
const (
	Tree     Kind = iota + 1 // a prefix mirrored as a directory tree behind a symlink
	File                     // one key's value as one file
	Template                 // a Go text/template rendered to one file
)

// Output is one thing configsync keeps on disk.
type Output struct {
	Kind     Kind
	Source   string           // prefix (Tree), key (File), template file (Template)
	Template *render.Template // Template only
	Dest     string           // tree symlink or file path
	Publish  publish.Options
}

// String names the output in logs and errors.
func (o Output) String() string {
	switch o.Kind {
	case Tree:
		return fmt.Sprintf("tree %q -> %s", o.Source, o.Dest)
	case File:
		return fmt.Sprintf("key %q -> %s", o.Source, o.Dest)
	default:
		return fmt.Sprintf("template %s -> %s", o.Source, o.Dest)
	}
}

// Render renders o against v (pure).
func (o Output) Render(v brain.View, env map[string]string, allowMissing, skipBad bool) render.Result {
	switch o.Kind {
	case Tree:
		return render.TreeOpts(v, o.Source, allowMissing, skipBad)
	case File:
		return render.Key(v, o.Source, allowMissing)
	default:
		return o.Template.Execute(v, env, allowMissing)
	}
}

// publishResult writes a complete, successful render.
func (o Output) publishResult(r render.Result) (bool, error) {
	if o.Kind == Tree {
		return publish.Tree(o.Dest, r.Files, o.Publish)
	}
	return publish.File(o.Dest, r.Data, o.Publish)
}
