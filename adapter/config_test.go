package adapter

import (
	"strings"
	"testing"

	"github.com/sidecarkit/sidecarkit/shared/config"
)

func load(t *testing.T, args, env []string) (*Config, error) {
	t.Helper()
	l := config.NewLoader("adapter")
	var c Config
	Bind(l, &c)
	if _, err := l.Parse(args, env); err != nil {
		return nil, err
	}
	return &c, Validate(l, &c)
}

func TestConfigFromFlagsAndEnv(t *testing.T) {
	c, err := load(t, []string{"--paths", "/var/log/app/*.log,/var/log/other.log", "--parser", "json", "--es-header", "VL-Time-Field: @timestamp"},
		[]string{"ADAPTER_ES_PASSWORD=s3cret", "ADAPTER_ES_USERNAME=elastic", "POD_NAME=web-0", "POD_NAMESPACE=shop", "ADAPTER_ES_URL=http://es:9200"})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Paths) != 2 || c.Parser != "json" || c.ESPassword != "s3cret" || c.Pod != "web-0" || c.Namespace != "shop" || c.ESURLs[0] != "http://es:9200" {
		t.Errorf("config %+v", c)
	}
}

func TestConfigReportsEveryProblem(t *testing.T) {
	_, err := load(t, []string{"--parser", "xml", "--read-from", "middle", "--es-url", "ftp://user:pw@x", "--batch-docs", "0",
		"--timezone", "Mars/Olympus", "--es-index", "Logs", "--multiline", "cobol", "--parsers", "*.log"}, nil)
	if err == nil {
		t.Fatal("accepted")
	}
	msg := err.Error()
	for _, want := range []string{"paths", "parser \"xml\"", "read-from \"middle\"", "es-url", "batch-docs", "timezone \"Mars/Olympus\"", "es-index \"Logs\"", "multiline \"cobol\"", "parsers \"*.log\""} {
		if !strings.Contains(msg, want) {
			t.Errorf("problems do not mention %s:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, ":pw@") {
		t.Errorf("a password in the URL leaked into the error:\n%s", msg)
	}
}
