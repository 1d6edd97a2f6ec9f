#!/usr/bin/env bash
# The HTTP API against its OpenAPI document, with outside tools:
#
#   bash tests/interop/api.sh target/debug/hotline
#
#   openapi-spec-validator  src/http/openapi.json is a valid OpenAPI 3.0
#                           document
#   schemathesis            the daemon (shipped config, an API token, a temp
#                           data dir) is run with the document it serves
#                           (GET /api/openapi.json): every operation gets
#                           generated requests, valid and invalid, for a
#                           bounded time and count; it fails on a 5xx, a
#                           response that does not match the document, a
#                           valid request refused or an invalid one taken
#   promtool / Prometheus   GET /metrics passes `promtool check metrics`,
#                           and a real Prometheus (Debian's, 2.42) scrapes
#                           it with the bearer token every second: the
#                           target is up and the hotline_* series are there
#                           to query (queue and agent gauges by label)
#
# GET /api/events/stream is left out (Server-Sent Events never end; its
# filters are tested by tests/http_api.rs and curl in acd.sh).
#
# Both tools are installed with pip, at pinned versions, in a venv kept in
# ${HOTLINE_TOOLS_DIR:-~/.cache/hotline}/api-venv (made once, ~20 s).
# Ports: HOTLINE_API_PORT_BASE (default 31600) .. +199 on 127.0.0.1.
#   HOTLINE_API_SECONDS  schemathesis' time budget (default 60)
#   HOTLINE_API_EXAMPLES examples per operation and phase (default 25)
#   HOTLINE_API_SEED     its seed (default 1: the same requests every run)
# Prints PASS/FAIL per check and "api: N passed, M failed"; exits 1 on any
# failure (keeping the work dir and schemathesis' report).

set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
HL_NAME=api HL_KEEP=${HOTLINE_INTEROP_KEEP:-0}
# shellcheck source=lib.sh
. "$HERE/lib.sh"
log() { hl_log "$@"; }

[ $# -eq 1 ] && [ -x "$1" ] || { echo "usage: $0 HOTLINE_BINARY" >&2; exit 2; }
BIN=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
BASE=${HOTLINE_API_PORT_BASE:-31600}
SIP_PORT=$BASE HTTP_PORT=$((BASE + 1)) PROM_PORT=$((BASE + 2)) RTP_PORTS="$((BASE + 100))-$((BASE + 199))"
SECONDS_BUDGET=${HOTLINE_API_SECONDS:-60}
EXAMPLES=${HOTLINE_API_EXAMPLES:-25}
SEED=${HOTLINE_API_SEED:-1}
TOKEN=api-check-token-$(date +%s)-$$

hl_ports_free "$BASE" 200

# --- the tools ------------------------------------------------------------------
VENV=${HOTLINE_TOOLS_DIR:-${HOME:-/root}/.cache/hotline}/api-venv
PINS=(schemathesis==4.32.5 openapi-spec-validator==0.9.0)
if ! "$VENV/bin/python" -c 'import schemathesis, openapi_spec_validator' 2>/dev/null; then
  log "installing ${PINS[*]} into $VENV"
  rm -rf "$VENV"
  python3 -m venv "$VENV" && "$VENV/bin/pip" install -q "${PINS[@]}" ||
    { echo "FAIL  api tools: pip could not install ${PINS[*]}"; echo "api: 0 passed, 1 failed"; exit 1; }
fi

passed=0 failed=0
pass() { echo "PASS  $*"; passed=$((passed + 1)); }
fail() { echo "FAIL  $*"; failed=$((failed + 1)); }

# --- the document -------------------------------------------------------------------
if "$VENV/bin/openapi-spec-validator" "$ROOT/src/http/openapi.json" > "$WORK/validator.log" 2>&1; then
  pass "openapi-spec-validator: src/http/openapi.json is valid OpenAPI 3.0"
else
  fail "openapi-spec-validator:"; cat "$WORK/validator.log"
fi

# --- the daemon ---------------------------------------------------------------------
hl_config "$ROOT" "$ROOT/config/flows" "$WORK/hotline.toml" \
  "s#^api_tokens = \\[\\]#api_tokens = [\"$TOKEN\"]#"
grep -q "^api_tokens = \[\"$TOKEN\"\]" "$WORK/hotline.toml" ||
  { echo "api: could not set api_tokens in the temp config" >&2; exit 2; }
if ! HOTLINE_LOG=${HOTLINE_LOG:-info} \
    hl_daemon "$BIN" "$WORK/hotline.toml" "$SIP_PORT" "$HTTP_PORT" "$RTP_PORTS" "$WORK/daemon.log"; then
  fail "daemon start: /healthz not up"; tail -n 40 "$WORK/daemon.log"
  echo "api: $passed passed, $failed failed"; exit 1
fi
log "daemon up (pid $DAEMON_PID, HTTP 127.0.0.1:$HTTP_PORT); schemathesis for up to ${SECONDS_BUDGET}s"

# --- schemathesis ---------------------------------------------------------------------
# From the work dir: schemathesis keeps its cache (.schemathesis/) there.
(cd "$WORK" && timeout -k 5 $((SECONDS_BUDGET + 60)) "$VENV/bin/schemathesis" run \
  "http://127.0.0.1:$HTTP_PORT/api/openapi.json" \
  -H "Authorization: Bearer $TOKEN" \
  --exclude-path /api/events/stream \
  -n "$EXAMPLES" --max-time "$SECONDS_BUDGET" --request-timeout 5 --seed "$SEED" \
  --report junit --report-dir "$WORK/report" \
  --no-color > "$WORK/schemathesis.log" 2>&1)
rc=$?
summary=$(grep -E '^  [0-9]+ generated' "$WORK/schemathesis.log" | tail -n 1 | sed 's/^ *//')
if [ $rc -eq 0 ]; then
  pass "schemathesis: ${summary:-no summary} (20 operations, seed $SEED)"
else
  fail "schemathesis (exit $rc): ${summary:-no summary}"
  sed -n '/FAILURES/,$p' "$WORK/schemathesis.log" | head -n 150
fi
# --- Prometheus ----------------------------------------------------------------------
if ! command -v prometheus > /dev/null || ! command -v promtool > /dev/null; then
  fail "prometheus: not installed (apt-get install prometheus)"
else
  if curl -sf -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$HTTP_PORT/metrics" > "$WORK/metrics.txt" &&
      promtool check metrics < "$WORK/metrics.txt" > "$WORK/promtool.log" 2>&1; then
    pass "promtool check metrics: $(grep -c '^# TYPE' "$WORK/metrics.txt") metrics, no lint"
  else
    fail "promtool check metrics:"; cat "$WORK/promtool.log"
  fi
  printf '%s\n' "global:" "  scrape_interval: 1s" "scrape_configs:" "  - job_name: hotline" \
    "    authorization:" "      credentials: $TOKEN" "    static_configs:" \
    "      - targets: ['127.0.0.1:$HTTP_PORT']" > "$WORK/prometheus.yml"
  timeout -k 5 60 prometheus --config.file="$WORK/prometheus.yml" \
    --storage.tsdb.path="$WORK/prometheus" --web.listen-address="127.0.0.1:$PROM_PORT" \
    > "$WORK/prometheus.log" 2>&1 &
  hl_track $!
  # prom_query EXPR: "N VALUE" (series in the result, the first one's value)
  prom_query() {
    curl -sf "http://127.0.0.1:$PROM_PORT/api/v1/query" --data-urlencode "query=$1" |
      python3 -c 'import json, sys; r = json.load(sys.stdin)["data"]["result"]; print(len(r), r[0]["value"][1] if r else "")'
  }
  up=""
  for _ in $(seq 1 60); do
    up=$(prom_query 'up{job="hotline"}' 2>/dev/null | cut -d' ' -f2)
    [ "$up" = 1 ] && sleep 2 && break
    sleep 0.5
  done
  series=$(prom_query 'count({__name__=~"hotline_.*",job="hotline"})' 2>/dev/null | cut -d' ' -f2)
  queues=$(prom_query 'hotline_queue_staffed{queue="12345"}' 2>/dev/null | cut -d' ' -f1)
  agents=$(prom_query 'sum(hotline_agents)' 2>/dev/null | cut -d' ' -f2)
  if [ "$up" = 1 ] && [ "${series:-0}" -ge 20 ] && [ "${queues:-0}" -ge 1 ] && [ "${agents:-0}" -ge 1 ]; then
    pass "prometheus: scraped with the token, up=1, $series hotline_* series, queue 12345 staffed gauge, the agents gauge sums to $agents"
  else
    fail "prometheus: up=${up:-none} series=${series:-none} queue-12345=${queues:-none} agents=${agents:-none}"
    tail -n 20 "$WORK/prometheus.log"
  fi
fi

if grep -qE 'panicked|ERROR' "$WORK/daemon.log"; then
  fail "daemon log: a panic or an error under schemathesis"
  grep -E 'panicked|ERROR' "$WORK/daemon.log" | head -n 20
else
  pass "daemon log: no panic, no error under schemathesis"
fi

echo "api: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
