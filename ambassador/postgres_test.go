package ambassador_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sidecarkit/sidecarkit/integration/testenv"
)

// postgres is a real PostgreSQL server started for one test.
type postgres struct {
	port     int
	password string // of the superuser "postgres"
}

// startPostgres runs initdb and postgres (from apt's postgresql) as the
// postgres user in a temp directory on a free port; password logins only
// over TCP, so a wrong password really fails.
func startPostgres(t *testing.T) *postgres {
	t.Helper()
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(bins) == 0 {
		testenv.Unavailable(t, "PostgreSQL not installed: apt-get install -y postgresql")
	}
	bindir := filepath.Dir(bins[len(bins)-1])
	u, err := user.Lookup("postgres")
	if err != nil || os.Geteuid() != 0 {
		testenv.Unavailable(t, "need root and a postgres user to run PostgreSQL (%v)", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	dir, err := os.MkdirTemp("", "amb-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chown(dir, uid, gid)
	pg := &postgres{port: testenv.FreePort(t), password: secret("postgres superuser password", fmt.Sprintf("pgsuper-%d", time.Now().UnixNano()))}
	pwfile := filepath.Join(dir, "pw")
	os.WriteFile(pwfile, []byte(pg.password), 0o600)
	os.Chown(pwfile, uid, gid)
	data := filepath.Join(dir, "data")
	cmd := exec.Command("runuser", "-u", "postgres", "--", filepath.Join(bindir, "initdb"), "-D", data, "-U", "postgres",
		"--pwfile", pwfile, "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	p := testenv.NewProcess(t, "postgres", []string{"runuser", "-u", "postgres", "--", filepath.Join(bindir, "postgres"), "-D", data, "-k", dir,
		"-p", strconv.Itoa(pg.port), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"}, nil,
		func() error {
			c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", pg.port), time.Second)
			if err != nil {
				return err
			}
			c.Close()
			return pg.login("postgres", pg.password)
		})
	p.Start()
	return pg
}

// login connects with a user and password and runs a query.
func (pg *postgres) login(user, password string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cfg, err := pgx.ParseConfig(fmt.Sprintf("postgres://127.0.0.1:%d/postgres?sslmode=disable", pg.port))
	if err != nil {
		return err
	}
	cfg.User, cfg.Password = user, password
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("login as %s failed", user) // never the password
	}
	defer c.Close(ctx)
	var n int
	return c.QueryRow(ctx, "select 1").Scan(&n)
}

// Dynamic PostgreSQL credentials from Vault's database engine: rendered,
// renewed at ~2/3 of the lease, replaced before the max TTL ends them, and
// each set really logs in. With --revoke-on-shutdown the last set stops
// working when the ambassador exits.
func TestDynamicPostgresCredentials(t *testing.T) {
	pg := startPostgres(t)
	v := testenv.StartVault(t)
	dir := t.TempDir()
	out := t.TempDir()
	cli(t, v, "secrets", "enable", "database")
	cli(t, v, "write", "database/config/pg", "plugin_name=postgresql-database-plugin",
		fmt.Sprintf("connection_url=postgresql://{{username}}:{{password}}@127.0.0.1:%d/postgres?sslmode=disable", pg.port),
		"allowed_roles=app", "username=postgres", "password="+pg.password)
	cli(t, v, "write", "database/roles/app", "db_name=pg",
		`creation_statements=CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';`,
		"default_ttl=6s", "max_ttl=15s")
	roleIDFile, secretIDFile := approle(t, v, dir, "1h", "24h")

	cfg := writeFile(t, filepath.Join(dir, "amb.yaml"), `
secrets:
  - name: db
    destination: `+out+`/db.creds
    template: |-
      {{ with secret "database/creds/app" }}{{ .Data.username }}
      {{ .Data.password }}{{ end }}
  - path: database/creds/app
    destination: `+out+`/db.env
    env_prefix: DB_
    format: env
`)
	a := startAmb(t, []string{"--config", cfg, "--approle-role-id-file", roleIDFile, "--approle-secret-id-file", secretIDFile,
		"--revoke-on-shutdown", "--notify-debounce", "50ms"}, "VAULT_ADDR="+v.Addr)
	a.ready(60 * time.Second)

	creds := func() (string, string) {
		parts := strings.SplitN(readFile(t, out+"/db.creds"), "\n", 2)
		if len(parts) != 2 {
			t.Fatalf("db.creds has %d lines", len(parts))
		}
		return parts[0], secret("db password", parts[1])
	}
	user1, pw1 := creds()
	secret("db user", user1)
	if env := readFile(t, out+"/db.env"); !strings.Contains(env, "DB_USERNAME="+user1) {
		t.Fatalf("env file does not hold the same credentials")
	}
	if err := pg.login(user1, pw1); err != nil {
		t.Fatalf("first credentials: %v", err)
	}
	if err := pg.login(user1, pw1+"x"); err == nil {
		t.Fatalf("a wrong password logs in: the test would prove nothing")
	}
	eventually(t, 60*time.Second, "lease renewed, capped by max TTL, then replaced", func() error {
		r := a.metric(`sidecarkit_ambassador_lease_renewals_total{result="ok"}`)
		c := a.metric(`sidecarkit_ambassador_lease_renewals_total{result="capped"}`)
		u, _ := creds()
		if r < 1 || c < 1 || u == user1 {
			return fmt.Errorf("renewed %v, capped %v, new user %v", r, c, u != user1)
		}
		return nil
	})
	user2, pw2 := creds()
	secret("db user 2", user2)
	if err := pg.login(user2, pw2); err != nil {
		t.Fatalf("replacement credentials: %v", err)
	}
	// The old lease was still alive when the new one arrived: replaced before expiry.
	if code := a.stop(); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if err := pg.login(user2, pw2); err == nil {
		t.Fatalf("credentials still work after --revoke-on-shutdown")
	}
}
