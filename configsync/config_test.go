package configsync

import (
	"strings"
	"testing"
	"time"

	"github.com/sidecarkit/sidecarkit/configsync/syncer"
	"github.com/sidecarkit/sidecarkit/shared/config"
)

func load(t *testing.T, args, env []string) (*Config, error) {
	t.Helper()
	var c Config
	l := config.NewLoader("configsync")
	Bind(l, &c)
	if _, err := l.Parse(args, env); err != nil {
		return &c, err
	}
	return &c, Validate(l, &c)
}

func TestSeedEnvironment(t *testing.T) {
	c, err := load(t, nil, []string{"CONFIG_SOURCE=consul://consul:8500/config/my-app", "SYNC_INTERVAL=30s", "CONSUL_HTTP_TOKEN=tok"})
	if err != nil {
		t.Fatal(err)
	}
	if c.SyncInterval != 30*time.Second {
		t.Errorf("sync interval %v", c.SyncInterval)
	}
	o, err := c.consulOptions()
	if err != nil || o.Address != "consul:8500" || o.Scheme != "http" || o.Token != "tok" {
		t.Errorf("consul options %+v %v", o, err)
	}
	outs, probs := c.outputs()
	if len(probs) > 0 || len(outs) != 1 || outs[0].Kind != syncer.Tree || outs[0].Source != "config/my-app/" || outs[0].Dest != "/config/current" {
		t.Errorf("outputs %+v %v", outs, probs)
	}
}

func TestPrecedenceAndAliases(t *testing.T) {
	c, err := load(t, []string{"--sync-interval", "5s", "--file", "k=/out/k"},
		[]string{"SYNC_INTERVAL=30s", "CONSUL_HTTP_ADDR=https://c:8501", "CONSUL_CACERT=/dev/null", "CONFIGSYNC_CONSISTENCY=stale"})
	if err != nil {
		t.Fatal(err)
	}
	o, _ := c.consulOptions()
	if c.SyncInterval != 5*time.Second || o.Scheme != "https" || o.CACert != "/dev/null" || !o.Stale || o.Consistent {
		t.Errorf("config %+v options %+v", c, o)
	}
}

func TestOutputsOwnerAndMode(t *testing.T) {
	c, err := load(t, []string{"--file", "k=/out/k", "--mode", "0600", "--owner", "0:0"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	outs, _ := c.outputs()
	if p := outs[0].Publish; p.Mode != 0o600 || !p.Chown || p.UID != 0 || p.GID != 0 {
		t.Errorf("publish options %+v", p)
	}
	if _, err := load(t, []string{"--file", "k=/out/k", "--file", "j=/out/k"}, nil); err == nil {
		t.Error("two outputs to one path accepted")
	}
	if _, err := load(t, nil, nil); err == nil {
		t.Error("nothing to sync accepted")
	}
}

func TestTreeDestMustNotBeADirectory(t *testing.T) {
	dir := t.TempDir()
	_, err := load(t, []string{"--tree", "p=" + dir}, nil)
	if err == nil || !strings.Contains(err.Error(), dir+"/current") {
		t.Fatalf("got %v", err)
	}
}
