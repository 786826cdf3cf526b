package testenv

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
)

// These smoke tests prove each server the suite depends on starts and does
// its basic job through plain HTTP. The client-library smoke tests (vault/api,
// consul/api, olivere/elastic) live in integration/smoke.

func TestVaultStarts(t *testing.T) {
	v := StartVault(t)
	if out := v.CLI(t, "status"); !strings.Contains(out, "Sealed") {
		t.Fatalf("vault status: %s", out)
	}
}

func TestVictoriaLogsCounts(t *testing.T) {
	v := StartVictoriaLogs(t)
	body := `{"create":{}}
{"@timestamp":"2024-01-15T14:32:01Z","message":"hello","smoke":"one"}
`
	req, _ := http.NewRequest("POST", v.URL+"/insert/elasticsearch/_bulk", bytes.NewBufferString(body))
	req.Header.Set("VL-Time-Field", "@timestamp")
	req.Header.Set("VL-Msg-Field", "message")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("bulk: %v %v", err, resp)
	}
	resp.Body.Close()
	// VictoriaLogs makes data searchable within about a second.
	for i := 0; i < 100; i++ {
		if v.Count(t, `smoke:one`) == 1 {
			return
		}
		v.waitABit()
	}
	t.Fatalf("document not found")
}
