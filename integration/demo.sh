#!/usr/bin/env bash
# demo.sh — the sidecarkit pod in docker compose (make demo / make demo-down).
#   demo.sh up      build what is missing, start the stack, print what to try
#   demo.sh down    remove everything: containers, network, volumes
#   demo.sh status  docker-compose ps of the stack
#   demo.sh tour    runs the "things to try" against the running stack, showing each result
# Env: SK_PROJECT (default sidecarkit-demo), SK_REBUILD=1 rebuilds our images
# even when present, SK_APP_PORT/SK_PROXY_ADMIN_PORT/SK_PROXY_PROM_PORT/
# SK_VAULT_PORT/SK_CONSUL_PORT/SK_VLOGS_PORT (host ports on 127.0.0.1).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
project=${SK_PROJECT:-sidecarkit-demo}
file=$here/compose.yaml
dc=(docker-compose -p "$project" -f "$file")
rel=${file#"$root"/}
DC="docker-compose -p $project -f $rel"

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
need() {
  command -v docker >/dev/null || { echo "demo: docker is not installed" >&2; exit 1; }
  command -v docker-compose >/dev/null || { echo "demo: docker-compose (v1.29+) is not installed: apt-get install -y docker-compose" >&2; exit 1; }
  docker info >/dev/null 2>&1 || { echo "demo: the docker engine does not answer (is dockerd running? are you in the docker group?)" >&2; exit 1; }
  local v; v=$(docker-compose version --short 2>/dev/null || echo 0)
  case $v in 1.2[0-8].*|1.1*) echo "demo: docker-compose $v is too old: need 1.29+ (depends_on conditions, profiles)" >&2; exit 1 ;; esac
}

up() {
  need
  local t0; t0=$(date +%s)
  local cache=${SIDECARKIT_CACHE:-$HOME/.cache/sidecarkit}
  local missing=()
  for s in vault consul victorialogs; do
    docker image inspect "sidecarkit/server-$s:latest" >/dev/null 2>&1 || [ -x "$cache/bin/$s" ] || missing+=("$s")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    say "first run: building ${missing[*]} from source for the server images (Vault takes 10-20 minutes on 2 cores; progress every 30 s)"
  fi
  if [ "${SK_REBUILD:-0}" = 1 ]; then
    say "rebuilding the sidecarkit images"
    "$here/images.sh"
  else
    say "building the images that are missing (SK_REBUILD=1 or 'make images' rebuilds them)"
    "$here/images.sh" --missing
  fi
  pick_ports
  say "starting the pod (project $project): servers, seed, init, helpers, then the app"
  "${dc[@]}" up -d --remove-orphans
  say "waiting for the app to be healthy"
  local id; id=$("${dc[@]}" ps -q app)
  for _ in $(seq 1 120); do
    st=$(docker inspect -f '{{.State.Health.Status}}' "$id" 2>/dev/null || echo missing)
    [ "$st" = healthy ] && break
    sleep 1
  done
  if [ "$st" != healthy ]; then
    echo "demo: the app is $st; see: $DC ps; $DC logs" >&2
    "${dc[@]}" ps >&2
    exit 1
  fi
  "${dc[@]}" ps
  local app vault vlogs prom
  app=$(hostport pod 8080) prom=$(hostport pod 15090) vlogs=$(hostport victorialogs 9428) vault=$(hostport vault 8200)
  say "the pod is up in $(( $(date +%s) - t0 ))s. Things to try (from $root):"
  cat <<TRY

  # 1. Call the app through the proxy's inbound listener (initnet redirects :8080 to :15006)
  curl -s http://$app/
  $DC run --rm client get http://pod:8080/          # the client outside the pod
  $DC logs --tail=3 proxy                           # the proxy's JSON access log
  curl -s http://$prom/stats/prometheus | grep '^sidecarkit_proxy_requests'

  # 2. The app calls its upstream; initnet sends it through the proxy's outbound listener
  curl -s http://$app/upstream                      # the upstream saw the proxy's headers

  # 3. Rotate the DB password in Vault: the ambassador re-renders /vault/secrets and SIGHUPs the app
  curl -s http://$app/state | grep password_sha256
  $DC exec -T vault vault kv put secret/demoapp username=demoapp password=rotated-\$RANDOM
  sleep 3; curl -s http://$app/state | grep password_sha256      # a new fingerprint
  curl -s http://$app/vault      # the app reads Vault via the ambassador's 127.0.0.1:8200 proxy, no token

  # 4. Change the config in Consul: configsync publishes the tree and SIGHUPs the app
  $DC exec -T consul consul kv put config/demoapp/greeting bonjour
  sleep 1; curl -s http://$app/                     # "bonjour from demoapp ..."

  # 5. The app's legacy log lines, normalized to JSON by the adapter, in VictoriaLogs
  curl -s http://$app/log?n=100\&tag=try-me
  sleep 2; curl -s http://$vlogs/select/logsql/query --data-urlencode 'query=tag:try-me | stats count() lines'
  curl -s http://$vlogs/select/logsql/query --data-urlencode 'query=event:request | limit 3'
  # UI: http://$vlogs/select/vmui/    Vault: http://$vault (token root)

  # 6. Drain: the app turns not-ready, finishes in-flight work, then the helpers stop
  $DC stop

  # Or let the demo run steps 1-5 and show the results:
  integration/demo.sh tour

  # Remove everything
  make demo-down
TRY
}

# pick_ports keeps the default host ports unless one is taken (or set by the
# user); a taken one becomes "" = a free port docker picks. The choice is kept
# while the stack runs, so a second `make demo` changes nothing.
pick_ports() {
  local spec var def saved=${SIDECARKIT_CACHE:-$HOME/.cache/sidecarkit}/$project.ports
  if [ -n "$("${dc[@]}" ps -q 2>/dev/null)" ] && [ -f "$saved" ]; then
    # shellcheck disable=SC1090
    . "$saved"
    return
  fi
  mkdir -p "$(dirname "$saved")"; : >"$saved"
  for spec in SK_APP_PORT:18080 SK_PROXY_ADMIN_PORT:15000 SK_PROXY_PROM_PORT:15090 SK_VAULT_PORT:18200 SK_CONSUL_PORT:18500 SK_VLOGS_PORT:19428; do
    var=${spec%%:*} def=${spec#*:}
    if [ -z "${!var+set}" ] && (exec 3<>"/dev/tcp/127.0.0.1/$def") 2>/dev/null; then
      echo "demo: 127.0.0.1:$def is taken; $var gets a free port instead (shown below)"
      export "$var="
    fi
    if [ -n "${!var+set}" ]; then echo "export $var='${!var}'" >>"$saved"; fi
  done
}

hostport() { # service port → 127.0.0.1:port on the host
  "${dc[@]}" port "$1" "$2" 2>/dev/null | tail -n1
}

down() {
  need
  say "removing the demo (project $project): containers, network, volumes"
  pick_ports >/dev/null
  "${dc[@]}" --profile tools down --volumes --remove-orphans --timeout 40
  rm -f "${SIDECARKIT_CACHE:-$HOME/.cache/sidecarkit}/$project.ports"
  local left; left=$(docker ps -aq --filter "label=com.docker.compose.project=$project"; docker volume ls -q --filter "label=com.docker.compose.project=$project"; docker network ls -q --filter "label=com.docker.compose.project=$project")
  if [ -n "$left" ]; then echo "demo: left behind: $left" >&2; exit 1; fi
  say "nothing left behind"
}

# tour runs the printed steps against the running stack and shows what each
# one did — a guided look, and a smoke test of the instructions.
tour() {
  need
  [ -n "$("${dc[@]}" ps -q app 2>/dev/null)" ] || { echo "demo: not running; make demo first" >&2; exit 1; }
  local app prom vlogs tag pw
  app=$(hostport pod 8080) prom=$(hostport pod 15090) vlogs=$(hostport victorialogs 9428)
  tag=tour$RANDOM pw=tour-password-$RANDOM
  step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
  step "curl -s http://$app/"; curl -s "http://$app/"
  step "$DC logs --tail=1 proxy"; "${dc[@]}" logs --no-color --tail=1 proxy
  step "curl -s http://$prom/stats/prometheus | grep requests_total | grep -v ' 0$'"
  curl -s "http://$prom/stats/prometheus" | grep '^sidecarkit_proxy_requests_total' | grep -v ' 0$' || true
  step "curl -s http://$app/upstream   (upstream's view: the proxy added Via, traceparent)"
  curl -s "http://$app/upstream" | grep -E '"(Via|Traceparent|X-Request-Id)"' -A1 | grep -v -- -- || true
  step "$DC exec -T vault vault kv put secret/demoapp username=demoapp password=$pw"
  "${dc[@]}" exec -T vault vault kv put secret/demoapp username=demoapp password="$pw" | grep -E '^version' || true
  local want; want=$(printf %s "$pw" | sha256sum | cut -c1-16)
  for _ in $(seq 1 30); do curl -s "http://$app/state" | grep -q "$want" && break; sleep 0.5; done
  step "curl -s http://$app/state   (want password_sha256 $want)"; curl -s "http://$app/state" | grep -E 'password_sha256|reloads'
  step "curl -s http://$app/vault   (read through the ambassador's 127.0.0.1:8200 proxy, no token)"; curl -s "http://$app/vault"
  step "$DC exec -T consul consul kv put config/demoapp/greeting bonjour-$tag"
  "${dc[@]}" exec -T consul consul kv put config/demoapp/greeting "bonjour-$tag"
  for _ in $(seq 1 30); do curl -s "http://$app/" | grep -q "bonjour-$tag" && break; sleep 0.5; done
  step "curl -s http://$app/"; curl -s "http://$app/"
  step "curl -s 'http://$app/log?n=1000&tag=$tag'"; curl -s "http://$app/log?n=1000&tag=$tag"
  local n=0
  for _ in $(seq 1 60); do
    n=$(curl -s "http://$vlogs/select/logsql/query" --data-urlencode "query=tag:$tag event:synthetic | stats count() n" | sed 's/.*"n":"\([0-9]*\)".*/\1/')
    [ "$n" = 1000 ] && break; sleep 0.5
  done
  step "VictoriaLogs: tag:$tag event:synthetic | stats count()  ->  $n of 1000"
  curl -s "http://$vlogs/select/logsql/query" --data-urlencode "query=tag:$tag event:synthetic | limit 1"
}

case ${1:-up} in
  up) up ;;
  down) down ;;
  status) need; "${dc[@]}" ps ;;
  tour) tour ;;
  *) echo "usage: $0 up|down|status|tour" >&2; exit 2 ;;
esac
