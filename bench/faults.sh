#!/usr/bin/env bash
# Fault benchmarks: the daemon killed with calls up, and its database taken
# away under load; SIPp on 127.0.0.1; prints Markdown tables.
#
#   bash bench/faults.sh [kill9|db-outage|flood|all]   (default: all, < 10 min)
#
# Binary, build, HOTLINE_BENCH_KEEP and HOTLINE_BENCH_OUT as in bench/run.sh;
# ports from HOTLINE_BENCH_PORT_BASE (default 14000): SIP +0, HTTP +1,
# callers' SIPp +2, agents' SIPp +3 (media +6), the flood's SIPp +4 (media
# +16), the database proxy +7,
# callers' media +10 upwards, daemon RTP +4000..+13999. Set-up (queue
# `bench`, agents b0001.., their SIPp) as in bench/bridged.sh
# (bench/bridged_setup.sh).
#
#   kill9      KILL_CALLS (100) callers (bench/ivr_hold.xml, held 5 min)
#              bridged to as many SIPp agents, every call recorded
#              (SQLite). Once every call is journaled as up with its agent
#              and its recording is being written, 6 s more (a journal
#              refresh), then kill -9. The daemon is started again on the
#              same data folder: the calls it recorded as interrupted (with
#              their agent), the recordings repaired, the files that play
#              (Python's wave: stereo, 8 kHz, length > 0; the shortest and
#              longest), journal rows left, and the time from start to the
#              last interrupted record.
#   db-outage  PostgreSQL (HOTLINE_BENCH_POSTGRES, default
#              postgres://postgres@127.0.0.1:5432/test, a fresh schema)
#              reached through a TCP proxy (bench/cut_proxy.py) that is cut
#              for OUTAGE_SECS (60): every connection closed and new ones
#              refused, as when the server stops. SIPp callers at
#              OUTAGE_RATE (50) calls/s for OUTAGE_BEFORE (20) s +
#              OUTAGE_SECS + OUTAGE_AFTER (20) s to the IVR line `bench`
#              (bench/flows: INVITE, 200, ACK, 1 s, BYE;
#              tests/interop/sipp/simple_call.xml). Calls placed and
#              answered (SIPp), records in the database with the run's
#              Call-ID prefix and how many distinct (none lost: records =
#              calls placed; none twice: distinct = records), the spool's
#              peak (/metrics, each second), rows spooled and written from
#              the spool, and how long after the database was back the
#              spool was empty.
#   flood      a scanner's sweep and a center's softphones on one machine:
#              no trunk is trusted (sip.trunks only 192.0.2.1, a test
#              address never used), so every source is limited. Softphone
#              users b0001.. place LEGIT_RATE (10) authenticated calls/s
#              for LEGIT_SECS (60) s (bench/sipp/auth_call.xml: digest,
#              200, 1 s, BYE; 5 messages a call from one socket), and after
#              5 s another socket sends OPTIONS at FLOOD_RATE (10,000)/s for
#              FLOOD_SECS (30) s (bench/sipp/flood_options.xml, one message
#              per SIPp call). The flood's messages sent and the rate SIPp
#              achieved, the kernel's drops on the daemon's SIP socket
#              (/proc/net/udp: a full receive queue), the bans listed at
#              /api/bans (reason, messages dropped), the daemon's CPU while
#              flooded, and the legitimate calls that completed.
#
# Needs: sipp, python3, curl, psql (db-outage).

set -uo pipefail

MODE=${1:-all}
case "$MODE" in kill9|db-outage|flood|all) ;; *)
  echo "usage: $0 [kill9|db-outage|flood|all]" >&2; exit 2 ;;
esac
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"
bench_tools sipp python3 timeout
bench_bin "$ROOT"

KILL_CALLS=${KILL_CALLS:-100}
OUTAGE_RATE=${OUTAGE_RATE:-50}
OUTAGE_SECS=${OUTAGE_SECS:-60}
OUTAGE_BEFORE=${OUTAGE_BEFORE:-20}
OUTAGE_AFTER=${OUTAGE_AFTER:-20}
PG=${HOTLINE_BENCH_POSTGRES:-postgres://postgres@127.0.0.1:5432/test}
FLOOD_RATE=${FLOOD_RATE:-10000}
FLOOD_SECS=${FLOOD_SECS:-30}
LEGIT_RATE=${LEGIT_RATE:-10}
LEGIT_SECS=${LEGIT_SECS:-60}
AGENTS=$KILL_CALLS

BASE=${HOTLINE_BENCH_PORT_BASE:-14000}
bench_ports "$BASE"
FLOOD_PORT=$((BASE + 4))
FLOOD_MEDIA=$((BASE + 16))
PROXY_PORT=$((BASE + 7))

HL_NAME=faults HL_KEEP=${HOTLINE_BENCH_KEEP:-0} HL_OWN_SESSION=1
# shellcheck source=../tests/interop/lib.sh
. "$ROOT/tests/interop/lib.sh"
hl_ports_free "$BASE" 20
CLK_TCK=$(getconf CLK_TCK)
# shellcheck source=bridged_setup.sh
. "$HERE/bridged_setup.sh"

OUT=$WORK/tables.md
: > "$OUT"
emit() { echo "$*" | tee -a "$OUT"; }

# until SECS CMD...: runs CMD every 0.5 s until it succeeds (1) or SECS pass (0).
until_ok() {
  local secs=$1; shift
  local end=$(( $(date +%s) + secs ))
  while [ "$(date +%s)" -lt "$end" ]; do "$@" && return 0; sleep 0.5; done
  return 1
}

# --- kill -9 with calls up ----------------------------------------------------
bench_kill9() {
  local n=$KILL_CALLS prefix=bench-kill9-
  CONFIG=$WORK/hotline-rec.toml
  start_daemon kill9
  agents_up kill9 "$n" 400
  sipp_bg kill9 400 -sf "$HERE/ivr_hold.xml" -s bridge -r 50 -m "$n" -l "$n" \
    -d 300000 -cid_str "$prefix%u-%p@%s"
  local callers=$SIPP_PID
  all_up() {
    [ "$(db "SELECT count(*) FROM open_calls WHERE call_id LIKE '$prefix%' AND record LIKE '%\"agent\":\"b%'")" -ge "$n" ] &&
    [ "$(db "SELECT count(*) FROM recordings WHERE call_id LIKE '$prefix%' AND status = 'recording'")" -ge "$n" ]
  }
  if ! until_ok 90 all_up; then
    hl_log "kill9: not every call came up: $(db "SELECT count(*) FROM open_calls") journaled"
  fi
  sleep 6
  local up rec_up
  up=$(db "SELECT count(*) FROM open_calls WHERE call_id LIKE '$prefix%' AND record LIKE '%\"agent\":\"b%'")
  rec_up=$(db "SELECT count(*) FROM recordings WHERE call_id LIKE '$prefix%' AND status = 'recording'")
  hl_log "kill9: $up bridged calls journaled, $rec_up recordings being written; kill -9 $DAEMON_PID"
  kill -KILL "$DAEMON_PID"; wait "$DAEMON_PID" 2>/dev/null
  kill -TERM "$callers" "$AGENT_SIPP" 2>/dev/null; wait "$callers" "$AGENT_SIPP" 2>/dev/null
  local t0 t1
  t0=$(now)
  KEEP_DATA=1 start_daemon kill9-restart
  until_ok 60 test "$(db "SELECT count(*) FROM open_calls")" = 0 ||
    hl_log "kill9: journal rows left after 60 s"
  t1=$(now)
  local interrupted with_agent rec_int left files
  interrupted=$(db "SELECT count(*) FROM call_records WHERE call_id LIKE '$prefix%' AND disposition = 'interrupted'")
  with_agent=$(db "SELECT count(*) FROM call_records WHERE call_id LIKE '$prefix%' AND disposition = 'interrupted' AND agent IS NOT NULL")
  rec_int=$(db "SELECT count(*) FROM recordings WHERE call_id LIKE '$prefix%' AND status = 'interrupted'")
  left=$(db "SELECT count(*) FROM open_calls")
  files=$(python3 - "$WORK/data" "$prefix" <<'EOF_PY'
import sqlite3, sys, wave
data, prefix = sys.argv[1], sys.argv[2]
db = sqlite3.connect(f"file:{data}/hotline.db?mode=ro", uri=True)
ok, lens = 0, []
for (path,) in db.execute("SELECT path FROM recordings WHERE call_id LIKE ? || '%'", (prefix,)):
    try:
        with wave.open(f"{data}/{path}") as w:
            if w.getnchannels() == 2 and w.getframerate() == 8000 and w.getnframes() > 0:
                ok += 1
                lens.append(w.getnframes() / 8000)
    except (OSError, wave.Error, EOFError):
        pass
print(ok, f"{min(lens):.1f}" if lens else "-", f"{max(lens):.1f}" if lens else "-")
EOF_PY
)
  local playable shortest longest
  read -r playable shortest longest <<< "$files"
  hl_daemon_stop
  emit ""
  emit "### kill -9 with $n recorded bridged calls up, then a restart (SQLite)"
  emit ""
  emit "| calls up at the kill | recordings being written | interrupted records after restart | of them with their agent | recordings marked interrupted | files that play | shortest / longest file s | journal rows left | start to last record s |"
  emit "|---|---|---|---|---|---|---|---|---|"
  emit "| $up | $rec_up | $interrupted | $with_agent | $rec_int | $playable | $shortest / $longest | $left | $(elapsed "$t0" "$t1") |"
}

# --- the database away under load ---------------------------------------------
bench_db_outage() {
  command -v psql >/dev/null || { hl_log "db-outage: psql not installed; skipped"; return; }
  psql "$PG" -c 'select 1' >/dev/null 2>&1 || { hl_log "db-outage: no PostgreSQL at $PG; skipped"; return; }
  local schema=bench_outage_$$_$(date +%s) prefix=bench-outage-
  local total=$((OUTAGE_BEFORE + OUTAGE_SECS + OUTAGE_AFTER))
  local calls=$((OUTAGE_RATE * total))
  psql "$PG" -q -c "CREATE SCHEMA $schema" || return
  local sep='?'; case "$PG" in *\?*) sep='&' ;; esac
  local url="${PG/127.0.0.1:5432/127.0.0.1:$PROXY_PORT}${sep}options[search_path]=$schema"
  local upstream_port; upstream_port=$(echo "$PG" | sed -n 's#.*@[^:/]*:\([0-9]*\).*#\1#p'); upstream_port=${upstream_port:-5432}
  local cut=$WORK/db.cut
  rm -f "$cut"
  python3 "$HERE/cut_proxy.py" "$PROXY_PORT" "$upstream_port" "$cut" $((total + 300)) > "$WORK/proxy.log" 2>&1 &
  local proxy=$!; hl_track "$proxy"
  sleep 0.5
  hl_config "$ROOT" "$HERE/flows" "$WORK/outage.toml" \
    's#^max_calls = .*#max_calls = 6000#' \
    's#^address = "0.0.0.0"#address = "127.0.0.1"#' \
    's#^seed_demo = .*#seed_demo = false#' \
    "s#^\\[database\\]#[database]\\nurl = \"$url\"#"
  CONFIG=$WORK/outage.toml
  start_daemon db-outage
  # /metrics each second: the spool's rows.
  ( while kill -0 "$DAEMON_PID" 2>/dev/null; do
      printf '%s %s\n' "$(date +%s.%N)" \
        "$(curl -s "http://127.0.0.1:$HTTP_PORT/metrics" | awk '$1 == "hotline_store_spool_rows" { print $2 }')"
      sleep 1
    done ) > "$WORK/spool.tsv" &
  local mon=$!; hl_track "$mon"
  sipp_bg db-outage $((total + 30)) -sf "$ROOT/tests/interop/sipp/simple_call.xml" -s bench \
    -r "$OUTAGE_RATE" -m "$calls" -l $((OUTAGE_RATE * 5)) -cid_str "$prefix%u-%p@%s"
  local callers=$SIPP_PID
  sleep "$OUTAGE_BEFORE"
  touch "$cut"; local t_cut; t_cut=$(now)
  hl_log "db-outage: database cut"
  sleep "$OUTAGE_SECS"
  rm -f "$cut"; local t_back; t_back=$(now)
  hl_log "db-outage: database back"
  wait "$callers" 2>/dev/null
  # The spool is empty again at the first 0 of its gauge after the
  # database is back.
  first_empty() { awk -v b="$t_back" '$1 > b && $2 == "0" { print $1; exit }' "$WORK/spool.tsv"; }
  local t_empty=""
  for _ in $(seq 1 240); do
    t_empty=$(first_empty)
    [ -n "$t_empty" ] && break
    sleep 0.5
  done
  sleep 3
  local m placed ok failed records distinct peak spooled unspooled drain
  m=$(curl -s "http://127.0.0.1:$HTTP_PORT/metrics")
  spooled=$(echo "$m" | awk '$1 == "hotline_store_spooled_rows_total" { print $2 }')
  unspooled=$(echo "$m" | awk '$1 == "hotline_store_unspooled_rows_total" { print $2 }')
  peak=$(awk '{ if ($2 > p) p = $2 } END { print p + 0 }' "$WORK/spool.tsv")
  placed=$(stat_field "$WORK/db-outage.stat.csv" "OutgoingCall(C)")
  ok=$(stat_field "$WORK/db-outage.stat.csv" "SuccessfulCall(C)")
  failed=$(stat_field "$WORK/db-outage.stat.csv" "FailedCall(C)")
  records=$(psql "$PG" -tA -c "SELECT count(*) FROM $schema.call_records WHERE call_id LIKE '$prefix%'")
  distinct=$(psql "$PG" -tA -c "SELECT count(DISTINCT call_id) FROM $schema.call_records WHERE call_id LIKE '$prefix%'")
  drain=$( [ -n "$t_empty" ] && elapsed "$t_back" "$t_empty" || echo "not empty")
  hl_daemon_stop
  kill "$mon" "$proxy" 2>/dev/null
  psql "$PG" -q -c "SET client_min_messages = warning; DROP SCHEMA $schema CASCADE"
  emit ""
  emit "### PostgreSQL away for $(elapsed "$t_cut" "$t_back") s under $OUTAGE_RATE calls/s ($OUTAGE_BEFORE s before, $OUTAGE_AFTER s after)"
  emit ""
  emit "| calls placed | answered (SIPp) | failed | records | distinct Call-IDs | lost (placed - records) | spool peak rows | rows spooled | rows written from the spool | spool empty after the database is back (s) |"
  emit "|---|---|---|---|---|---|---|---|---|---|"
  emit "| $placed | $ok | $failed | $records | $distinct | $((placed - records)) | $peak | ${spooled:-?} | ${unspooled:-?} | $drain |"
}

# --- a flood beside legitimate calls -------------------------------------------
bench_flood() {
  sed 's#^addresses = \["127.0.0.1/32", "::1/128"\]#addresses = ["192.0.2.1/32"]#' \
    "$WORK/hotline.toml" > "$WORK/flood.toml"
  grep -q '^addresses = \["192.0.2.1/32"\]' "$WORK/flood.toml" ||
    { hl_log "flood: could not untrust 127.0.0.1 in the config"; return; }
  CONFIG=$WORK/flood.toml
  start_daemon flood
  local calls=$((LEGIT_RATE * LEGIT_SECS)) prefix=bench-legit-
  sipp_bg flood-legit $((LEGIT_SECS + 40)) -sf "$HERE/sipp/auth_call.xml" -inf "$WORK/agents.csv" \
    -s bridge -r "$LEGIT_RATE" -m "$calls" -l 100 -d 1000 -cid_str "$prefix%u-%p@%s"
  local legit=$SIPP_PID
  sleep 5
  local d0 t0 d1 t1
  d0=$(ticks "$DAEMON_PID"); t0=$(now)
  SIPP_LOCAL_PORT=$FLOOD_PORT SIPP_LOCAL_MEDIA=$FLOOD_MEDIA \
    sipp_bg flood $((FLOOD_SECS + 5)) -sf "$HERE/sipp/flood_options.xml" -s 12345 \
    -r "$FLOOD_RATE" -rp 1000 -m $((FLOOD_RATE * FLOOD_SECS)) -l 10000
  local flood=$SIPP_PID
  wait "$flood" 2>/dev/null
  d1=$(ticks "$DAEMON_PID"); t1=$(now)
  local bans; bans=$(curl -s "http://127.0.0.1:$HTTP_PORT/api/bans")
  cat /proc/net/udp /proc/net/udp6 > "$WORK/flood.udp" 2>/dev/null
  wait "$legit" 2>/dev/null
  local sent kdrops secs ok failed records
  secs=$(elapsed "$t0" "$t1")
  sent=$(stat_field "$WORK/flood.stat.csv" "OutgoingCall(C)")
  # What the kernel dropped on the daemon's SIP socket (its receive queue full).
  kdrops=$(udp_drops "$WORK/flood.udp" "$SIP_PORT" "$SIP_PORT")
  ok=$(stat_field "$WORK/flood-legit.stat.csv" "SuccessfulCall(C)")
  failed=$((calls - ok))
  records=$(db "SELECT count(*) FROM call_records WHERE call_id LIKE '$prefix%'")
  local banline
  banline=$(echo "$bans" | python3 -c '
import json, sys
bans = json.load(sys.stdin)["bans"]
port = int(sys.argv[1])
mine = [b for b in bans if b["port"] == port]
others = [b for b in bans if b["port"] != port]
print(len(mine), mine[0]["reason"] if mine else "-", sum(b["dropped"] for b in mine), len(others))
' "$FLOOD_PORT")
  local nbans reason dropped other
  read -r nbans reason dropped other <<< "$banline"
  hl_daemon_stop
  emit ""
  emit "### A flood of OPTIONS from one socket beside $LEGIT_RATE authenticated calls/s from another (no trusted trunk)"
  emit ""
  emit "| flood messages sent | flood rate achieved /s | dropped by the kernel (SIP socket full) | bans of the flood socket (reason) | its messages dropped by the ban | other sources banned | daemon CPU % while flooded | legitimate calls | completed | completed % | their records |"
  emit "|---|---|---|---|---|---|---|---|---|---|---|"
  emit "| $sent | $(awk -v n="$sent" -v s="$secs" 'BEGIN { printf "%.0f", n / s }') | $kdrops | $nbans ($reason) | $dropped | $other | $(cpu_pct "$d0" "$d1" "$secs") | $calls | $ok | $(awk -v a="$ok" -v n="$calls" 'BEGIN { printf "%.2f", 100 * a / n }') | $records |"
}

emit "## hotline fault benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores"
case "$MODE" in
  kill9) bench_kill9 ;;
  db-outage) bench_db_outage ;;
  flood) bench_flood ;;
  all) bench_kill9; bench_db_outage; bench_flood ;;
esac
[ -n "${HOTLINE_BENCH_OUT:-}" ] && cp "$OUT" "$HOTLINE_BENCH_OUT"
hl_log "done"
