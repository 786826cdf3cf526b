package smoke

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	consul "github.com/hashicorp/consul/api"
	vault "github.com/hashicorp/vault/api"
	"github.com/olivere/elastic/v7"

	"github.com/sidecarkit/sidecarkit/integration/testenv"
)

func TestVaultKVv2WriteRead(t *testing.T) {
	v := testenv.StartVault(t)
	cfg := vault.DefaultConfig()
	cfg.Address = v.Addr
	c, err := vault.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(v.Token)
	ctx := context.Background()
	kv := c.KVv2("secret") // the dev server mounts KV v2 at secret/
	if _, err := kv.Put(ctx, "app/db", map[string]any{"password": "s3cr3t", "user": "app"}); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "app/db", map[string]any{"password": "rotated", "user": "app"}); err != nil {
		t.Fatal(err)
	}
	s, err := kv.Get(ctx, "app/db")
	if err != nil {
		t.Fatal(err)
	}
	if s.Data["password"] != "rotated" || s.VersionMetadata.Version != 2 {
		t.Fatalf("read back %v (version %d)", s.Data, s.VersionMetadata.Version)
	}
	old, err := kv.GetVersion(ctx, "app/db", 1)
	if err != nil || old.Data["password"] != "s3cr3t" {
		t.Fatalf("version 1: %v %v", old, err)
	}
}

func TestConsulBlockingQueryWokenByPut(t *testing.T) {
	s := testenv.StartConsul(t)
	cfg := consul.DefaultConfig()
	cfg.Address = s.Addr
	c, err := consul.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	kv := c.KV()
	if _, err := kv.Put(&consul.KVPair{Key: "config/app/level", Value: []byte("info")}, nil); err != nil {
		t.Fatal(err)
	}
	_, meta, err := kv.Get("config/app/level", nil)
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		p   *consul.KVPair
		idx uint64
		err error
	}
	woke := make(chan result, 1)
	go func() {
		// Blocks for up to a minute unless the key changes.
		p, m, err := kv.Get("config/app/level", &consul.QueryOptions{WaitIndex: meta.LastIndex, WaitTime: time.Minute})
		r := result{p: p, err: err}
		if m != nil {
			r.idx = m.LastIndex
		}
		woke <- r
	}()
	select {
	case r := <-woke:
		t.Fatalf("blocking query returned before any change: %+v", r)
	case <-time.After(300 * time.Millisecond):
	}
	if _, err := kv.Put(&consul.KVPair{Key: "config/app/level", Value: []byte("debug")}, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-woke:
		if r.err != nil || r.p == nil || string(r.p.Value) != "debug" || r.idx <= meta.LastIndex {
			t.Fatalf("woken with %+v", r)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("blocking query not woken by the put")
	}
}

func TestVictoriaLogsBulk10kCountedExactly(t *testing.T) {
	vl := testenv.StartVictoriaLogs(t)
	hdr := http.Header{}
	hdr.Set("VL-Time-Field", "@timestamp")
	hdr.Set("VL-Msg-Field", "message")
	c, err := elastic.NewClient(
		elastic.SetURL(vl.URL+"/insert/elasticsearch"),
		elastic.SetSniff(false), elastic.SetHealthcheck(false),
		elastic.SetHeaders(hdr),
	)
	if err != nil {
		t.Fatal(err)
	}
	run := fmt.Sprintf("smoke-%d", time.Now().UnixNano())
	ctx := context.Background()
	const total, batch = 10_000, 1_000
	ts := time.Now().UTC()
	for start := 0; start < total; start += batch {
		bulk := c.Bulk()
		for i := start; i < start+batch; i++ {
			bulk.Add(elastic.NewBulkCreateRequest().Index("smoke").Doc(map[string]any{
				"@timestamp": ts.Add(time.Duration(i) * time.Microsecond).Format(time.RFC3339Nano),
				"message":    fmt.Sprintf("line %d", i),
				"run":        run,
				"seq":        i,
			}))
		}
		resp, err := bulk.Do(ctx)
		if err != nil {
			t.Fatalf("bulk at %d: %v", start, err)
		}
		if resp.Errors || len(resp.Items) != batch {
			t.Fatalf("bulk at %d: errors=%v items=%d", start, resp.Errors, len(resp.Items))
		}
	}
	var n int
	for range 100 {
		if n = vl.Count(t, "run:"+run); n == total {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("counted %d documents back, want exactly %d", n, total)
}
