#!/usr/bin/env bash
# Bridged-call and ACD benchmark: SIPp callers queued to SIPp agents through
# the daemon on 127.0.0.1; prints Markdown tables.
#
#   bash bench/bridged.sh [bridged|recorded|cost|offers|all]   (default: all, < 15 min)
#
# Binary, build and ports as in bench/run.sh (HOTLINE_BENCH_BIN,
# HOTLINE_BENCH_BUILD, HOTLINE_BENCH_KEEP, HOTLINE_BENCH_OUT); the base port is
# HOTLINE_BENCH_PORT_BASE (default 12000): SIP +0, HTTP +1, callers' SIPp +2,
# agents' SIPp +3 (media +6, echo), callers' media +10 upwards, daemon RTP
# +4000..+13999. Config: config/hotline.toml with bench/flows-bridged/ (the line
# `bridge`, bench/flows-bridged/bridge.toml: straight into the queue `bench`),
# keep-alive OPTIONS off (SIPp's UAS would count them as unexpected), and
# AGENTS (1600) generated registrar users b0001.. (password pw-bNNNN, HA1 =
# MD5(user:hotline:password)) and agents (login_on_register, wrap_up_secs 0,
# queue `bench`: longest_idle, ring_timeout_secs 5, max_len 2000, no
# announcements). Each agent takes one call per bridged step, so a step of
# N calls registers N agents.
#
# Agents: one SIPp registers them (bench/sipp/agent_register.xml, an
# injection CSV of users and passwords, digest via [authentication]), then
# one SIPp on the same port answers every INVITE with PCMA
# (bench/sipp/agent_answer.xml) and echoes RTP (-rtp_echo). The login rows
# in queue_events are counted before the callers start.
# Callers: bench/ivr_hold.xml to `bridge`, sending caller.wav: PCMA frames
# whose first 4 bytes count the frame (60 s, looped), so a packet is known
# after the bridge rewrote its header.
#
#   bridged   steps of BRIDGED_STEPS (100 500 1000 1500; then 1750 2000 while
#             a step is clean: no failed call, no loss, p99 < 2 ms) calls,
#             started at 300/s, each held 30 s. A fresh daemon per step
#             (idle RSS as the base). Once all calls are up (+3 s): 5 s of
#             CPU (daemon, callers' SIPp, agents' SIPp; /proc) and RSS, then a
#             5 s capture of the RTP on lo (tcpdump, kernel time stamps, every
#             stream, 1 in 2^k frames picked by the counter in the filter;
#             bench/bridge_delay.py): delay the daemon adds (out - in,
#             p50/p99/max) and packets lost, per direction (caller -> agent,
#             agent echo -> caller). Bridged calls = `connect` rows.
#   recorded  the same steps (RECORDED_STEPS: 500 1000 1350) with the queue
#             recording every call: besides the above, the daemon's disk
#             writes (/proc/PID/io) over the 5 s window, and after the calls
#             ended (waiting up to 60 s for the recorders to finish) every
#             recording against its call (bench/recording_gaps.py): file
#             length vs bridged time (talk_ms), the call's numbered frames
#             missing from the recording, split into those that never
#             reached the daemon (the bridge's sequence gaps, from its log)
#             and gaps (received, not recorded), megabytes written. CPU
#             compared with the plain step of the same size when both ran.
#   cost      the plain steps at RECORDED_STEPS, then the recorded ones: the
#             CPU cost of recording over plain bridging, step by step.
#   offers    200 agents; callers at OFFER_RATES (50 100 150 200) calls/s for
#             10 s each, INVITE, 200, ACK, 1 s, BYE
#             (tests/interop/sipp/simple_call.xml); offers per second from
#             queue_events (`offer` rows per second: median and max over the
#             step), setup = first offer - arrival (call_records.arrived_at),
#             p50/p99, calls not answered by an agent, SIPp failures. 200
#             agents busy ~1.05 s per call cap the rate near 190/s.
#
# Calm-machine wait before each step, and never while bench/run.sh runs
# (waits up to 10 min for it). Needs: sipp, tcpdump, python3, root.

set -uo pipefail

MODE=${1:-all}
case "$MODE" in bridged|recorded|cost|offers|all) ;; *)
  echo "usage: $0 [bridged|recorded|cost|offers|all]" >&2; exit 2 ;;
esac
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"
bench_tools sipp tcpdump python3 timeout
bench_bin "$ROOT"

BRIDGED_STEPS=${BRIDGED_STEPS:-"100 500 1000 1500"}
BRIDGED_MORE=${BRIDGED_MORE-"1750 2000"}
RECORDED_STEPS=${RECORDED_STEPS:-"500 1000 1350"}
OFFER_RATES=${OFFER_RATES:-"50 100 150 200"}
OFFER_AGENTS=200
AGENTS=${AGENTS:-1600}
RATE=300
HOLD_SECS=30
CAPTURE=5   # s

BASE=${HOTLINE_BENCH_PORT_BASE:-12000}
bench_ports "$BASE"

HL_NAME=bridged HL_KEEP=${HOTLINE_BENCH_KEEP:-0} HL_OWN_SESSION=1
# shellcheck source=../tests/interop/lib.sh
. "$ROOT/tests/interop/lib.sh"
hl_ports_free "$BASE" 20
CLK_TCK=$(getconf CLK_TCK)

# shellcheck source=bridged_setup.sh
. "$HERE/bridged_setup.sh"

OUT=$WORK/tables.md
: > "$OUT"
emit() { echo "$*" | tee -a "$OUT"; }

# --- bridged calls -----------------------------------------------------------------
# bench_bridged [recorded]: the plain steps, or the recorded ones.
declare -A PLAIN_CPU
bench_bridged() {
  local rec=${1:-} rows=() delays=() recs=() calls clean=1 steps=$BRIDGED_STEPS more=$BRIDGED_MORE
  if [ "$rec" = recorded ]; then steps=$RECORDED_STEPS more=""; CONFIG=$WORK/hotline-rec.toml
  else CONFIG=$WORK/hotline.toml; fi
  for calls in $steps $more; do
    case " $steps " in *" $calls "*) ;; *) [ "$clean" = 1 ] || break ;; esac
    [ "$calls" -le "$AGENTS" ] || { hl_log "only $AGENTS agents; no step of $calls"; break; }
    local name=bridged-$calls${rec:+-rec} prefix="bench-bridged-$calls${rec:+-rec}-"
    wait_for_bench_run
    start_daemon "$name"
    local idle=$IDLE_RSS ramp=$(( (calls + RATE - 1) / RATE ))
    agents_up "$name" "$calls" $((HOLD_SECS + ramp + 40))
    local ap; ap=$(SIPP_PID=$AGENT_SIPP sipp_proc)
    calm_wait
    sipp_bg "$name" $((HOLD_SECS + ramp + 20)) -sf "$HERE/ivr_hold.xml" -s bridge \
      -r "$RATE" -m "$calls" -l "$calls" -d $((HOLD_SECS * 1000)) -cid_str "$prefix%u-%p@%s"
    local sp; sp=$(sipp_proc)
    # The daemon's RTP sockets' kernel drops (a full receive queue), sampled
    # every second while the calls run.
    ( while kill -0 "$SIPP_PID" 2>/dev/null; do cat /proc/net/udp; sleep 1; done ) > "$WORK/$name.udp" &
    local uw=$!; hl_track "$uw"
    sleep $((ramp + 3))
    local ld d0 s0 a0 t0 d1 s1 a1 t1 rss up bridged b0 b1
    ld=$(load)
    d0=$(ticks "$DAEMON_PID"); s0=$(ticks "$sp"); a0=$(ticks "$ap"); t0=$(now); b0=$(busy)
    local w0 w1; w0=$(awk '/^wchar:/ {print $2}' "/proc/$DAEMON_PID/io")
    sleep 2.5
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$DAEMON_PID/status")
    sleep 2.5
    d1=$(ticks "$DAEMON_PID"); s1=$(ticks "$sp"); a1=$(ticks "$ap"); t1=$(now); b1=$(busy)
    w1=$(awk '/^wchar:/ {print $2}' "/proc/$DAEMON_PID/io")
    up=$(stat_field "$WORK/$name.stat.csv" "CurrentCall")
    bridged=$(db "SELECT count(*) FROM queue_events WHERE kind = 'connect'")
    # Capture 1 in 2^k frames of every stream, chosen in the kernel filter by
    # the frame counter (the UDP payload's bytes 12..15), so that tcpdump
    # handles at most ~40,000 packets/s and does not starve the daemon.
    local k=0; while [ $(( (calls * 200) >> k )) -gt 40000 ]; do k=$((k + 1)); done
    setsid timeout -s INT -k 2 "$CAPTURE" tcpdump -i lo -n -s 58 -B 65536 --time-stamp-precision=nano \
      -w "$WORK/$name.pcap" "udp and portrange $RTP_LOW-$RTP_HIGH and (udp[20:4] & $(( (1 << k) - 1 ))) = 0" \
      2> "$WORK/$name.tcpdump.log" &
    local tp=$!; hl_track "$tp"; wait "$tp" 2>/dev/null
    local secs dcpu scpu acpu ocpu per_call dropped
    secs=$(elapsed "$t0" "$t1")
    # Everything else on the machine: busy time minus the daemon's and both SIPps'.
    ocpu=$(cpu_pct 0 $(( (b1 - b0) - (d1 - d0) - (s1 - s0) - (a1 - a0) )) "$secs")
    dcpu=$(cpu_pct "$d0" "$d1" "$secs"); scpu=$(cpu_pct "$s0" "$s1" "$secs"); acpu=$(cpu_pct "$a0" "$a1" "$secs")
    per_call=$(awk -v r="$rss" -v i="$idle" -v n="$calls" 'BEGIN { printf "%.1f", (r - i) / n }')
    dropped=$(sed -n 's/^\([0-9]*\) packets dropped by kernel/\1/p' "$WORK/$name.tcpdump.log")
    local res ca ac
    res=$(python3 "$HERE/bridge_delay.py" "$WORK/$name.pcap" "$RTP_LOW" "$RTP_HIGH" "$AGENT_MEDIA" 2>&1)
    echo "$res" > "$WORK/$name.delay.txt"
    ca=$(echo "$res" | grep '^dir=c2a'); ac=$(echo "$res" | grep '^dir=a2c')
    v() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }
    wait "$SIPP_PID" 2>/dev/null
    wait "$uw" 2>/dev/null
    local ok failed sockdrops
    ok=$(stat_field "$WORK/$name.stat.csv" "SuccessfulCall(C)")
    failed=$((calls - ok))
    sockdrops=$(udp_drops "$WORK/$name.udp" "$RTP_LOW" "$RTP_HIGH")
    # The load generator's own losses at the agents' echo socket (the
    # callers' SIPp never reads what it is sent: its socket drops it all).
    local sippdrops; sippdrops=$(udp_drops "$WORK/$name.udp" "$AGENT_MEDIA" "$AGENT_MEDIA")
    rows+=("| $calls | $up | $bridged | $failed | $dcpu | $idle | $rss | $per_call | $scpu | $acpu | $ocpu | $LOGINS | $ld |")
    if [ "$rec" = recorded ]; then
      # The recordings are finished once the calls' BYEs are through and
      # the recorders have written what they hold (up to 60 s more).
      local g mbs plain left drain=0
      for drain in $(seq 1 60); do
        left=$(db "SELECT count(*) FROM recordings WHERE call_id LIKE '$prefix%' AND status = 'recording'" 2>/dev/null || echo 1)
        [ "$left" = 0 ] && break
        sleep 1
      done
      g=$(timeout 300 python3 -W ignore "$HERE/recording_gaps.py" "$WORK/data" "$prefix" "$WORK/daemon.log.$name" 2>&1)
      g="$g drain_s=$drain sockdrops=$sockdrops"
      echo "$g" > "$WORK/$name.gaps.txt"
      mbs=$(awk -v a="$w0" -v b="$w1" -v s="$secs" 'BEGIN { printf "%.2f", (b - a) / s / 1e6 }')
      plain=${PLAIN_CPU[$calls]:-}
      recs+=("| $calls | $(v "$g" calls) | $(v "$g" recordings) | $(v "$g" files) | $(v "$g" drain_s) | $(v "$g" len_diff_max) | $(v "$g" len_over_60) | $(v "$g" missing) | $(v "$g" lost_in) | $sockdrops | $(v "$g" gaps) | $(v "$g" gap_calls) | $mbs | $(v "$g" mb) | $dcpu | ${plain:-not run} |")
      hl_log "recorded $calls: $g; $mbs MB/s"
    else
      PLAIN_CPU[$calls]=$dcpu
    fi
    delays+=("| $calls | $(v "$ca" pairs) | $(v "$ca" p50_us) | $(v "$ca" p99_us) | $(v "$ca" max_us) | $(v "$ca" lost) of $(v "$ca" packets) | $(v "$ac" pairs) | $(v "$ac" p50_us) | $(v "$ac" p99_us) | $(v "$ac" max_us) | $(v "$ac" lost) of $(v "$ac" packets) | 1 in $((1 << k)), ${dropped:-?} | $sockdrops | $sippdrops |")
    hl_log "bridged $calls: up $up, bridged $bridged, failed $failed, daemon $dcpu %, $per_call KiB/call; $ca; $ac"
    clean=0
    if [ "$failed" -eq 0 ] && [ "$(v "$ca" lost)" = 0 ] && [ "$(v "$ac" lost)" = 0 ] &&
       awk -v a="$(v "$ca" p99_us)" -v b="$(v "$ac" p99_us)" 'BEGIN { exit !(a < 2000 && b < 2000) }'; then
      clean=1
    fi
    kill -TERM "$AGENT_SIPP" 2>/dev/null; wait "$AGENT_SIPP" 2>/dev/null
    idle_wait
    hl_daemon_stop
  done
  emit ""
  emit "### ${rec:+Recorded }Bridged calls: SIPp callers queued to SIPp agents echoing RTP, each held ${HOLD_SECS} s${rec:+, every call recorded}"
  emit ""
  emit "| calls | up (SIPp) | bridged (connect rows) | failed | daemon CPU % | idle RSS KiB | RSS KiB | RSS KiB per call | callers' SIPp CPU % | agents' SIPp CPU % | other CPU % | agents logged in | load avg |"
  emit "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
  local r; for r in "${rows[@]}"; do emit "$r"; done
  emit ""
  emit "Delay the daemon adds (packet in on lo -> the same payload out, kernel time stamps, ${CAPTURE} s capture of every stream, a sample of frames), and packets lost:"
  emit ""
  emit "| calls | caller->agent streams paired | p50 us | p99 us | max us | lost | agent->caller streams paired | p50 us | p99 us | max us | lost | frames captured, drops | drops at the daemon's sockets | drops at the agents' echo socket |"
  emit "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
  for r in "${delays[@]}"; do emit "$r"; done
  emit ""
  emit "Drops at the daemon's sockets: the kernel's drop counts of its RTP sockets over the whole step (a full receive queue: the daemon read too late; counted in lost as well); drops at the agents' echo socket: the same for the load generator's one socket that must read every packet (SIPp's echo of all agents), which make the agents' side send less and are not the daemon's (the callers' SIPp reads nothing of what it is sent, by design)."
  emit ""
  emit "CPU 100 % = one core, over a 5 s window with all calls up (before the capture); other CPU = all CPUs' busy time minus the daemon's and SIPp's (other people's builds, kernel threads). Target: 1,350 bridged calls, zero loss, p99 < 2 ms, < 160 KiB per call."
  if [ "$rec" = recorded ]; then
    emit ""
    emit "Every recording against its call (bench/recording_gaps.py), after the calls ended:"
    emit ""
    emit "| calls | bridged calls | recordings complete | files playable | finished within s of the last BYE | max abs(length - bridged time) ms | calls > 60 ms off | frames missing | of them never reached the daemon | of those, dropped at the daemon's sockets | gaps (received, not recorded) | calls with gaps | disk MB/s (5 s window) | MB written | daemon CPU % recorded | daemon CPU % plain (same step) |"
    emit "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    for r in "${recs[@]}"; do emit "$r"; done
    emit ""
    emit "Frames missing: the bench's numbered frames (both channels, 300 ms in to 300 ms before the end) not found in the recording; never reached the daemon: the sequence gaps the bridge saw on that side (its \"bridge ended\" log line); dropped at the daemon's sockets: the kernel's drop count of the daemon's RTP sockets (a full receive queue: the daemon read too late; the rest were lost by SIPp or the kernel before); gaps: the rest, frames the daemon received that the recording lacks. Target: 1,350 recorded calls, zero gaps."
  fi
}

# --- offers per second -------------------------------------------------------------
bench_offers() {
  local rows=() rate
  wait_for_bench_run
  start_daemon offers
  local total=0; for rate in $OFFER_RATES; do total=$((total + rate * 10)); done
  agents_up offers "$OFFER_AGENTS" $((total / 50 + 200))
  local ap; ap=$(SIPP_PID=$AGENT_SIPP sipp_proc)
  for rate in $OFFER_RATES; do
    local name=offers-$rate n=$((rate * 10)) prefix="bench-offers-$rate-"
    wait_for_bench_run
    calm_wait
    local ld d0 s0 a0 t0 d1 s1 a1 t1 sp
    ld=$(load)
    d0=$(ticks "$DAEMON_PID"); a0=$(ticks "$ap"); t0=$(now)
    sipp_bg "$name" 40 -sf "$ROOT/tests/interop/sipp/simple_call.xml" -s bridge \
      -r "$rate" -m "$n" -l $((rate * 10)) -d 1000 -cid_str "$prefix%u-%p@%s"
    sp=$(sipp_proc); s0=$(ticks "$sp"); s1=$s0
    while kill -0 "$SIPP_PID" 2>/dev/null; do
      local s; s=$(ticks "$sp"); [ "$s" -gt 0 ] && s1=$s
      sleep 0.5
    done
    wait "$SIPP_PID" 2>/dev/null
    d1=$(ticks "$DAEMON_PID"); a1=$(ticks "$ap"); t1=$(now)
    sleep 2
    local secs ok failed stats
    secs=$(elapsed "$t0" "$t1")
    ok=$(stat_field "$WORK/$name.stat.csv" "SuccessfulCall(C)")
    failed=$((n - ok))
    stats=$(python3 - "$WORK/data/hotline.db" "$prefix" <<'EOF_PY'
import sqlite3, sys
from collections import Counter
from datetime import datetime
db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True, timeout=5)
like = sys.argv[2] + "%"
ts = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
offers = [r[0] for r in db.execute(
    "SELECT at FROM queue_events WHERE kind = 'offer' AND call_id LIKE ?", (like,))]
per_s = sorted(Counter(int(ts(a)) for a in offers).values())
first = dict(db.execute("SELECT call_id, min(at) FROM queue_events WHERE kind = 'offer' "
                        "AND call_id LIKE ? GROUP BY call_id", (like,)))
setup = sorted((ts(first[c]) - ts(a)) * 1000 for c, a in db.execute(
    "SELECT call_id, arrived_at FROM call_records WHERE call_id LIKE ?", (like,)) if c in first)
recs, answered = db.execute("SELECT count(*), sum(disposition = 'answered') FROM call_records "
                            "WHERE call_id LIKE ?", (like,)).fetchone()
pct = lambda v, p: v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))] if v else float("nan")
print(f"{len(offers)} {pct(per_s, 50) if per_s else 0} {per_s[-1] if per_s else 0} "
      f"{pct(setup, 50):.1f} {pct(setup, 99):.1f} {recs} {(recs or 0) - (answered or 0)}")
EOF_PY
)
    local noffers med max s50 s99 recs unanswered
    read -r noffers med max s50 s99 recs unanswered <<< "$stats"
    rows+=("| $rate | $n | $ok | $failed | $noffers | $med | $max | $s50 | $s99 | $recs | $unanswered | $(cpu_pct "$d0" "$d1" "$secs") | $(cpu_pct "$s0" "$s1" "$secs") | $(cpu_pct "$a0" "$a1" "$secs") | $ld |")
    hl_log "offers $rate/s: $ok/$n ok, $noffers offers (median $med/s, max $max/s), setup p50 $s50 p99 $s99 ms, $unanswered not answered"
    sleep 2
  done
  kill -TERM "$AGENT_SIPP" 2>/dev/null; wait "$AGENT_SIPP" 2>/dev/null
  hl_daemon_stop
  emit ""
  emit "### ACD offers per second, $OFFER_AGENTS agents auto-answering, calls of 1 s (10 s per step)"
  emit ""
  emit "| calls/s | calls | successful | failed | offers | offers/s median | offers/s max | setup p50 ms | setup p99 ms | call records | not answered by an agent | daemon CPU % | callers' SIPp CPU % | agents' SIPp CPU % | load avg |"
  emit "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
  local r; for r in "${rows[@]}"; do emit "$r"; done
  emit ""
  emit "Setup = the call's first offer to an agent (queue_events.at) - its arrival (call_records.arrived_at)."
}

emit "## hotline bridged-call benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores ($(sed -n 's/^model name\t*: //p' /proc/cpuinfo | head -n 1))"
case "$MODE" in
  bridged) bench_bridged ;;
  recorded) bench_bridged recorded ;;
  cost) BRIDGED_STEPS=$RECORDED_STEPS BRIDGED_MORE="" bench_bridged; bench_bridged recorded ;;
  offers) bench_offers ;;
  all) bench_bridged; bench_bridged recorded; bench_offers ;;
esac
[ -n "${HOTLINE_BENCH_OUT:-}" ] && cp "$OUT" "$HOTLINE_BENCH_OUT"
hl_log "done"
