#!/usr/bin/env bash
# IVR benchmark: the daemon under SIPp load on 127.0.0.1; prints Markdown tables.
#
#   bash bench/run.sh [ivr-cps|ivr-hold|all]        (default: all, < 10 min)
#
# Takes target/release/hotline (builds it with `nice -n 19 cargo build
# --release` if missing, or always with HOTLINE_BENCH_BUILD=1; another
# binary with HOTLINE_BENCH_BIN=PATH). Starts it with a temp config
# (config/hotline.toml with absolute paths, bench/flows/ as the only flow
# folder, SQLite in the temp work dir, sip.max_calls 6000, RTP ports for
# 5,000 calls, RTP timeout 20 s (callers that
# SIPp gave up on are let go before the next step), RTP on 127.0.0.1, demo data off). The
# bench line `bench` (bench/flows/bench.toml) plays a 1.00 s prompt, then
# loops a menu prompt until the caller hangs up.
#
#   ivr-cps   calls per second. Steps of CPS_STEPS calls/s (200..1200), each
#             for CPS_SECS (10) s: SIPp UAC (tests/interop/sipp/simple_call.xml)
#             INVITE -> 200 -> ACK -> 1 s pause -> BYE, no caller RTP. Per
#             step: offered / successful / failed calls (SIPp's -trace_stat
#             final line; offered - successful counts as failed, so calls
#             never placed or cut off by the step's time limit (+20 s) fail
#             too), the rate achieved, SIPp retransmissions, mean setup time,
#             the call records in the SQLite file with the step's Call-ID
#             prefix (must equal the calls SIPp placed), daemon and SIPp CPU.
#             Result: the highest step rate with < 0.1 % failed calls (and
#             a note if a lower step failed).
#   ivr-hold  concurrent calls. Steps of HOLD_STEPS calls (100, 500, 1000,
#             2000; then 3000 and 4000 while a step has no failed call and
#             p99 within 20 +- 2 ms), started at HOLD_RATE (300) calls/s,
#             each held 30 s (bench/ivr_hold.xml) with the caller sending
#             PCMA (SIPp rtp_stream, 50 packets/s) while the daemon plays
#             prompts. Once all calls are up (+2 s) a 12 s window measures:
#             the daemon's RTP spacing as the callers receive it (tcpdump on
#             lo, kernel time stamps, a sample of the daemon's ports chosen
#             in the kernel filter, at least ~128 streams; bench/rtp_spacing.py
#             takes per-stream inter-arrival gaps: mean, p50, p99, max, share
#             outside 18..22 ms), daemon and SIPp CPU (utime+stime from
#             /proc/PID/stat over the window; 100 % = one core), daemon RSS
#             (/proc/PID/status VmRSS mid-window) minus its idle RSS, per
#             call (each step has a fresh daemon, so its idle RSS is the
#             base); calls up (SIPp's CurrentCall); records afterwards.
#
# /proc/loadavg is recorded with each step, and "other CPU %": all CPUs'
# busy time (/proc/stat) minus the daemon's and SIPp's over the step, i.e.
# tcpdump, kernel threads and other people's builds. Those run at nice 19,
# but with sched_autogroup (Debian's default) nice only orders processes
# within one session, so a build still takes its session's fair share; rerun
# a step that looks disturbed. Before each step the bench waits up to 20 s
# for a second in which the others use under half a core. For the same reason the daemon, SIPp and
# tcpdump each run in a session of their own (setsid, still nice 0): in one
# group with the load generator the daemon would share one fair share with
# it, which no production box does.
#
# Ports, all on 127.0.0.1: HOTLINE_BENCH_PORT_BASE (default 10000): SIP
# +0, HTTP +1, SIPp +2, SIPp media +10, daemon RTP +4000..+13999 (below
# Linux's ephemeral range 32768+ for the default base).
# HOTLINE_BENCH_KEEP=1 keeps the work dir (logs, captures, SIPp stats);
# HOTLINE_BENCH_OUT=FILE also writes the tables there; HOTLINE_BENCH_PERF=1
# records the daemon with `perf record -g` during each hold window
# ($WORK/hold-N.perf.data; implies looking at it, so use with KEEP=1).
# Needs: sipp (sip-tester), tcpdump, sox, python3, root (tcpdump).
# Every tool runs under `timeout`; everything started is killed on exit.

set -uo pipefail

MODE=${1:-all}
case "$MODE" in ivr-cps|ivr-hold|all) ;; *)
  echo "usage: $0 [ivr-cps|ivr-hold|all]" >&2; exit 2 ;;
esac
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
for tool in sipp tcpdump sox python3 timeout; do
  command -v "$tool" >/dev/null || { echo "bench: $tool not installed" >&2; exit 2; }
done

BIN=${HOTLINE_BENCH_BIN:-$ROOT/target/release/hotline}
if [ "${HOTLINE_BENCH_BUILD:-0}" = 1 ] || { [ -z "${HOTLINE_BENCH_BIN:-}" ] && [ ! -x "$BIN" ]; }; then
  (cd "$ROOT" && nice -n 19 cargo build --release) || exit 2
fi
BIN=$(readlink -f "$BIN")
[ -x "$BIN" ] || { echo "bench: $BIN is not an executable" >&2; exit 2; }

CPS_STEPS=${CPS_STEPS:-"200 400 600 800 1000 1200"}
CPS_SECS=${CPS_SECS:-10}
HOLD_STEPS=${HOLD_STEPS:-"100 500 1000 2000"}
HOLD_MORE=${HOLD_MORE-"3000 4000"}   # tried while the previous step held
HOLD_RATE=${HOLD_RATE:-300}
HOLD_SECS=30
WINDOW=12

BASE=${HOTLINE_BENCH_PORT_BASE:-10000}
SIP_PORT=$BASE
HTTP_PORT=$((BASE + 1))
SIPP_PORT=$((BASE + 2))
SIPP_MEDIA=$((BASE + 10))
RTP_LOW=$((BASE + 4000))
RTP_HIGH=$((BASE + 13999))

HL_NAME=bench HL_KEEP=${HOTLINE_BENCH_KEEP:-0} HL_OWN_SESSION=1
# shellcheck source=../tests/interop/lib.sh
. "$ROOT/tests/interop/lib.sh"   # WORK, hl_log, hl_track, cleanup on exit, daemon start

hl_ports_free "$BASE" 20
CLK_TCK=$(getconf CLK_TCK)

# --- daemon ------------------------------------------------------------------
hl_config "$ROOT" "$HERE/flows" "$WORK/hotline.toml" \
  's#^max_calls = .*#max_calls = 6000#' \
  's#^timeout_secs = .*#timeout_secs = 20#' \
  's#^address = "0.0.0.0"#address = "127.0.0.1"#' \
  's#^seed_demo = .*#seed_demo = false#'
# The caller's audio: a 440 Hz tone, A-law, looped by SIPp's rtp_stream.
sox -n -r 8000 -c 1 -e a-law "$WORK/caller.wav" synth 10 sine 440 vol 0.3 || exit 2

# start_daemon: a daemon with no calls; sets IDLE_RSS once it has settled.
start_daemon() {
  if ! HOTLINE_LOG=${HOTLINE_LOG:-info} hl_daemon "$BIN" "$WORK/hotline.toml" \
      "$SIP_PORT" "$HTTP_PORT" "$RTP_LOW-$RTP_HIGH" "$WORK/daemon.log.$1"; then
    echo "bench: daemon did not start"; tail -n 40 "$WORK/daemon.log.$1"; exit 1
  fi
  sleep 2
  IDLE_RSS=$(awk '/^VmRSS:/ {print $2}' "/proc/$DAEMON_PID/status")
  hl_log "daemon up (pid $DAEMON_PID, idle RSS $IDLE_RSS KiB, log daemon.log.$1)"
}
hl_log "daemon: $BIN (SIP 127.0.0.1:$SIP_PORT, HTTP :$HTTP_PORT, RTP $RTP_LOW-$RTP_HIGH, work $WORK)"

# --- measuring ---------------------------------------------------------------
# ticks, cpu_pct, now, elapsed, load, busy, calm_wait, idle_wait,
# stat_field, sipp_bg, sipp_proc: shared with bench/bridged.sh.
CALM_SECS=${CALM_SECS:-20}
# shellcheck source=lib.sh
. "$HERE/lib.sh"

# achieved_rate FILE CREATED: calls/s SIPp placed while it was still placing
# them (its last stats line before OutgoingCall(C) reached CREATED).
achieved_rate() {
  awk -F';' -v all="$2" 'NR == 1 { for (i = 1; i <= NF; i++) { if ($i == "StartTime") st = i;
      if ($i == "CurrentTime") ct = i; if ($i == "OutgoingCall(C)") oc = i }; next }
    $oc < all { split($st, a, "\t"); split($ct, b, "\t"); if (b[3] > a[3]) r = $oc / (b[3] - a[3]) }
    END { printf "%.0f", r }' "$1"
}
# records PREFIX: call records in the SQLite file whose Call-ID starts with PREFIX.
records() {
  python3 - "$WORK/data/hotline.db" "$1" <<'EOF'
import sqlite3, sys
db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True, timeout=5)
print(db.execute("SELECT count(*) FROM call_records WHERE call_id LIKE ? || '%'",
                 (sys.argv[2],)).fetchone()[0])
EOF
}
# wait_records PREFIX N: until N records (or 20 s); prints the count.
wait_records() {
  local n=0
  for _ in $(seq 1 40); do
    n=$(records "$1" 2>/dev/null || echo 0)
    [ "$n" -ge "$2" ] && break
    sleep 0.5
  done
  echo "$n"
}

OUT=$WORK/tables.md
: > "$OUT"
emit() { echo "$*" | tee -a "$OUT"; }

# --- (a) calls per second ----------------------------------------------------
CPS_BEST=0    # the highest step with < 0.1 % failed
CPS_SOLID=0   # the highest step below the first step that failed more
bench_cps() {
  local rows=() rate cps_broken=0
  start_daemon cps
  for rate in $CPS_STEPS; do
    local name=cps-$rate n=$((rate * CPS_SECS)) prefix="bench-cps-$rate-"
    calm_wait
    local ld; ld=$(load)
    local d0 t0 s0 t1 d1 s1 sp b0 b1 ocpu s1k= t1s=
    d0=$(ticks "$DAEMON_PID"); t0=$(now); b0=$(busy)
    sipp_bg "$name" $((CPS_SECS + 20)) -sf "$ROOT/tests/interop/sipp/simple_call.xml" \
      -s bench -r "$rate" -m "$n" -l $((rate * 5)) -d 1000 -cid_str "$prefix%u-%p@%s"
    sp=$(sipp_proc); s0=$(ticks "$sp")
    # SIPp's CPU: sampled just before it exits (the last stats line is 1 s old).
    while kill -0 "$SIPP_PID" 2>/dev/null; do
      s1=$(ticks "$sp"); [ "$s1" -gt 0 ] && t1s=$(now) && s1k=$s1
      sleep 0.5
    done
    wait "$SIPP_PID" 2>/dev/null
    t1=$(now); d1=$(ticks "$DAEMON_PID"); b1=$(busy)
    local secs created ok failed retrans rt recs pct
    secs=$(elapsed "$t0" "$t1")
    created=$(stat_field "$WORK/$name.stat.csv" "OutgoingCall(C)")
    ok=$(stat_field "$WORK/$name.stat.csv" "SuccessfulCall(C)")
    retrans=$(stat_field "$WORK/$name.stat.csv" "Retransmissions(C)")
    rt=$(stat_field "$WORK/$name.stat.csv" "ResponseTime1(C)")
    rt=$(awk -v t="$rt" 'BEGIN { n = split(t, h, ":"); printf "%.1f", n == 4 ? (h[1] * 3600 + h[2] * 60 + h[3]) * 1000 + h[4] / 1000 : 0 }')
    failed=$((n - ok))
    pct=$(awk -v f="$failed" -v n="$n" 'BEGIN { printf "%.2f", n ? 100 * f / n : 0 }')
    recs=$(wait_records "$prefix" "$created")
    local achieved
    achieved=$(achieved_rate "$WORK/$name.stat.csv" "$created")
    local dcpu scpu
    dcpu=$(cpu_pct "$d0" "$d1" "$secs")
    scpu=$(cpu_pct "$s0" "${s1k:-$s0}" "$(elapsed "$t0" "${t1s:-$t1}")")
    # Everything else on the machine: busy time minus the daemon's and SIPp's.
    ocpu=$(cpu_pct 0 $(( (b1 - b0) - (d1 - d0) - (${s1k:-$s0} - s0) )) "$secs")
    rows+=("| $rate | $n | $ok | $failed | $pct | $achieved | $retrans | $rt | $recs | $dcpu | $scpu | $ocpu | $ld |")
    hl_log "cps $rate/s: $ok/$n ok, $failed failed ($pct %), $recs records, daemon $dcpu %, sipp $scpu %, load $ld"
    if [ "$recs" -ne "$created" ]; then
      hl_log "cps $rate/s: $recs records for $created calls placed"
    fi
    if awk -v f="$failed" -v n="$n" 'BEGIN { exit !(n > 0 && f * 1000 < n) }'; then
      [ "$rate" -gt "$CPS_BEST" ] && CPS_BEST=$rate
      [ "$cps_broken" = 0 ] && CPS_SOLID=$rate
    else
      cps_broken=1
    fi
    idle_wait
  done
  emit ""
  emit "### (a) Calls per second: INVITE, 200, ACK, 1 s prompt, BYE (${CPS_SECS} s per step)"
  emit ""
  emit "| offered calls/s | calls | successful | failed | failed % | achieved calls/s | SIPp retransmissions | mean setup ms | call records | daemon CPU % | SIPp CPU % | other CPU % | load avg |"
  emit "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
  local r; for r in "${rows[@]}"; do emit "$r"; done
  emit ""
  hl_daemon_stop
  emit "Highest rate with < 0.1 % failed calls: **$CPS_BEST calls/s** (target >= 800)."
  if [ "$CPS_SOLID" -ne "$CPS_BEST" ]; then
    emit "Not monotonic: every step up to $CPS_SOLID calls/s passed, a step between failed (look at its CPU columns)."
  fi
}

# --- (b) concurrent calls ----------------------------------------------------
bench_hold() {
  local rows=() calls steps="$HOLD_STEPS" held=1
  for calls in $steps $HOLD_MORE; do
    case " $HOLD_STEPS " in *" $calls "*) ;; *) [ "$held" = 1 ] || break ;; esac
    local name=hold-$calls prefix="bench-hold-$calls-"
    # A fresh daemon per step: its idle RSS is the base the calls add to.
    start_daemon "$name"
    local idle=$IDLE_RSS
    calm_wait
    local ramp=$(( (calls + HOLD_RATE - 1) / HOLD_RATE ))
    local ld
    sipp_bg "$name" $((HOLD_SECS + ramp + 20)) -sf "$HERE/ivr_hold.xml" -s bench \
      -r "$HOLD_RATE" -m "$calls" -l "$calls" -d $((HOLD_SECS * 1000)) -cid_str "$prefix%u-%p@%s"
    local sp; sp=$(sipp_proc)
    sleep $((ramp + 2))
    ld=$(load)
    # Sample about 128 streams: even ports whose bits 1..k are 0 (1 in 2^k).
    local k=0; while [ $(( calls >> (k + 1) )) -ge 128 ]; do k=$((k + 1)); done
    local mask=$(( ((1 << k) - 1) << 1 ))
    local d0 s0 t0 d1 s1 t1 rss up b0 b1 ocpu
    d0=$(ticks "$DAEMON_PID"); s0=$(ticks "$sp"); t0=$(now); b0=$(busy)
    setsid timeout -s INT -k 2 "$WINDOW" tcpdump -i lo -n -s 64 -B 65536 --time-stamp-precision=nano \
      -w "$WORK/$name.pcap" "udp and src portrange $RTP_LOW-$RTP_HIGH and (udp[0:2] & $mask) = 0" \
      2> "$WORK/$name.tcpdump.log" &
    local tp=$!
    hl_track "$tp"
    if [ "${HOTLINE_BENCH_PERF:-0}" = 1 ]; then
      timeout -k 2 $((WINDOW + 5)) perf record -q -F 499 -g -p "$DAEMON_PID" \
        -o "$WORK/$name.perf.data" -- sleep "$WINDOW" > "$WORK/$name.perf.log" 2>&1 &
      hl_track $!
    fi
    sleep $((WINDOW / 2))
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$DAEMON_PID/status")
    up=$(stat_field "$WORK/$name.stat.csv" "CurrentCall")
    wait "$tp" 2>/dev/null
    d1=$(ticks "$DAEMON_PID"); s1=$(ticks "$sp"); t1=$(now); b1=$(busy)
    local secs dcpu scpu per_call spacing dropped
    secs=$(elapsed "$t0" "$t1")
    dcpu=$(cpu_pct "$d0" "$d1" "$secs"); scpu=$(cpu_pct "$s0" "$s1" "$secs")
    # Everything else (tcpdump included): busy time minus the daemon's and SIPp's.
    ocpu=$(cpu_pct 0 $(( (b1 - b0) - (d1 - d0) - (s1 - s0) )) "$secs")
    per_call=$(awk -v r="$rss" -v i="$idle" -v n="$calls" 'BEGIN { printf "%.1f", (r - i) / n }')
    spacing=$(python3 "$HERE/rtp_spacing.py" "$WORK/$name.pcap" 0.5 "$WINDOW" 2>&1)
    dropped=$(sed -n 's/^\([0-9]*\) packets dropped by kernel/\1/p' "$WORK/$name.tcpdump.log")
    local v mean p50 p99 max out streams
    v() { echo "$spacing" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
    mean=$(v mean_ms); p50=$(v p50_ms); p99=$(v p99_ms); max=$(v max_ms); out=$(v outside_18_22_pct); streams=$(v streams)
    wait "$SIPP_PID" 2>/dev/null
    local ok created failed recs
    created=$(stat_field "$WORK/$name.stat.csv" "OutgoingCall(C)")
    ok=$(stat_field "$WORK/$name.stat.csv" "SuccessfulCall(C)")
    failed=$((calls - ok))
    recs=$(wait_records "$prefix" "$created")
    rows+=("| $calls | $up | $failed | ${mean:-?} | ${p50:-?} | ${p99:-?} | ${max:-?} | ${out:-?} | $dcpu | $idle | $rss | $per_call | $scpu | $ocpu | ${streams:-0} (1 in $((1 << k))), ${dropped:-?} dropped | $recs | $ld |")
    hl_log "hold $calls: up $up, failed $failed, spacing p50 $p50 p99 $p99 max $max ms, daemon $dcpu %, $per_call KiB/call, sipp $scpu %, load $ld"
    held=0
    if [ "$failed" -eq 0 ] && awk -v p="${p99:-99}" 'BEGIN { exit !(p >= 18 && p <= 22) }'; then
      held=1
    fi
    idle_wait
    hl_daemon_stop
  done
  emit ""
  emit "### (b) Concurrent calls, each held ${HOLD_SECS} s with prompts playing and the caller sending PCMA (${WINDOW} s window)"
  emit ""
  emit "| calls | up in window | failed | RTP spacing mean ms | p50 ms | p99 ms | max ms | gaps outside 18-22 ms % | daemon CPU % | idle RSS KiB | RSS KiB | RSS KiB per call | SIPp CPU % | other CPU % | streams captured | call records | load avg |"
  emit "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
  local r; for r in "${rows[@]}"; do emit "$r"; done
  emit ""
  emit "RSS per call = (RSS mid-window - idle RSS of that step's fresh daemon) / calls. CPU 100 % = one core. Targets at 2,000 calls: CPU < 100 %, p99 20 +- 2 ms, < 100 KiB per call."
}

emit "## hotline IVR benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores ($(sed -n 's/^model name\t*: //p' /proc/cpuinfo | head -n 1))"
case "$MODE" in
  ivr-cps) bench_cps ;;
  ivr-hold) bench_hold ;;
  all) bench_cps; bench_hold ;;
esac
[ -n "${HOTLINE_BENCH_OUT:-}" ] && cp "$OUT" "$HOTLINE_BENCH_OUT"
hl_log "done"
