#!/usr/bin/env bash
# Interop tests: the daemon against real SIP clients over 127.0.0.1.
#
#   bash tests/interop/run.sh target/debug/hotline
#
# Starts BINARY with a temp config (config/hotline.toml with absolute prompt
# and flow paths), a temp data dir (SQLite) and its own ports, waits for
# /healthz, then runs (the three long calls at the same time, ~80 s):
#
#   sipp-12333-balance    SIPp UAC, 12333 demo, digits from SIPp's shipped
#                         RFC 4733 pcaps: record says balance_read/self_served
#   sipp-12333-wrong-pin  SIPp UAC, three wrong PINs (000000: repeated digits
#                         from verbatim pcap replays): the daemon hangs up with
#                         BYE, record says pin_failed, hangup_by system
#   sipp-12345-udp/-tcp   SIPp, 3 plain calls each over UDP and TCP to 12345,
#                         BYE after 3 s: every record is there, hangup bye
#   baresip-12333-balance baresip 1.0 driven over ctrl_tcp, its own RFC 4733
#                         DTMF: record says balance_read, and the audio it
#                         heard (sndfile) contains the prompts in order
#
# then tests/interop/acd.sh (the agent queue, its own daemon on ports
# BASE+300..+499, ~75 s): baresip-acd-bridge, baresip-acd-transfer,
# sipp-acd-answered; see its header.
#
# Checks read the records back from GET /api/calls. Prints PASS/FAIL per
# test and "interop: N passed, M failed"; exits 1 on any failure and then
# shows the daemon's log tail and keeps the work dir.
#
# Needs: sipp (sip-tester), baresip (baresip-core), sox, python3, root (for
# SIPp's play_pcap_audio).  Ports: HOTLINE_INTEROP_PORT_BASE (default 31000)
# .. +499, all on 127.0.0.1: below Linux's ephemeral range (32768+), so no
# outgoing connection can hold one, and above the daemon's default RTP range.
# HOTLINE_INTEROP_KEEP=1 keeps the work dir.
# Every tool runs under `timeout`; everything started is killed on exit.

set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)

HL_NAME=interop HL_KEEP=${HOTLINE_INTEROP_KEEP:-0}
# shellcheck source=lib.sh
. "$HERE/lib.sh"   # WORK, hl_log, hl_track, cleanup on exit, daemon start
hl_interop_init "${HOTLINE_INTEROP_PORT_BASE:-31000}" "$@"
log() { hl_log "$@"; }

hl_ports_free "$BASE" 300

# --- daemon ------------------------------------------------------------------
hl_config "$ROOT" "$ROOT/config/flows" "$WORK/hotline.toml"
log "daemon: $BIN (SIP 127.0.0.1:$SIP_PORT, HTTP :$HTTP_PORT, RTP $RTP_PORTS, work $WORK)"
# hotline=debug logs each DTMF digit's arrival (never its value).
if ! HOTLINE_LOG=${HOTLINE_LOG:-info,hotline=debug} \
    hl_daemon "$BIN" "$WORK/hotline.toml" "$SIP_PORT" "$HTTP_PORT" "$RTP_PORTS" "$WORK/daemon.log"; then
  echo "FAIL  daemon start: /healthz not up"
  tail -n 40 "$WORK/daemon.log"
  echo "interop: 0 passed, 1 failed"
  exit 1
fi
log "daemon up (pid $DAEMON_PID)"

# --- helpers -----------------------------------------------------------------
result() { hl_result "$@"; }
sipp_run() { local name=$1; shift; hl_sipp "$name" "$SIP_PORT" "$@"; }
sipp_failed() { hl_sipp_failed "$@"; }

# --- test 1: SIPp, 12333 balance with RFC 4733 digits ------------------------
# -rtp_echo returns the daemon's audio to it, so its 30 s RTP timeout does
# not fire while the caller listens (the digit pcaps alone would leave
# gaps of up to 20 s: under the timeout, but only just).
t_sipp_balance() {
  local name=sipp-12333-balance
  sipp_run $name 110 -sf "$HERE/sipp/12333_balance.xml" -s 12333 \
    -p $((BASE + 10)) -mp $((BASE + 20)) -rtp_echo -m 1 -l 1 \
    -cid_str "interop-balance-%u-%p@%s"
  local rc=$?
  if [ $rc -ne 0 ]; then
    result $name fail "SIPp exit $rc (call failed)"; sipp_failed $name; return
  fi
  if $PY "$HERE/records.py" "$HTTP_PORT" check interop-balance- 1 \
      dialed=12333 caller=13800138000 self_service_result=balance_read \
      disposition=self_served hangup_by=caller hangup_reason=bye codec=PCMU language=zh \
      ivr_path~check_account; then
    result $name ok "18-digit ID and PIN keyed from SIPp's RFC 4733 pcaps; balance read"
  else
    result $name fail "call record not as expected"
  fi
}

# --- test 1b: SIPp, three wrong PINs, the daemon hangs up --------------------
t_sipp_wrong_pin() {
  local name=sipp-12333-wrong-pin
  sipp_run $name 120 -sf "$HERE/sipp/12333_wrong_pin.xml" -s 12333 \
    -p $((BASE + 11)) -mp $((BASE + 24)) -rtp_echo -m 1 -l 1 \
    -cid_str "interop-wrongpin-%u-%p@%s"
  local rc=$?
  if [ $rc -ne 0 ]; then
    result $name fail "SIPp exit $rc (no BYE from the daemon, or call failed)"; sipp_failed $name; return
  fi
  if $PY "$HERE/records.py" "$HTTP_PORT" check interop-wrongpin- 1 \
      self_service_result=pin_failed hangup_by=system codec=PCMU; then
    result $name ok "three wrong PINs (repeated digits) -> daemon's BYE, pin_failed"
  else
    result $name fail "call record not as expected"
  fi
}

# --- test 1c: SIPp, plain calls to 12345 over UDP and TCP ---------------------
t_sipp_simple() {
  local tr=$1 port=$2 media=$3
  local name=sipp-12345-$tr
  sipp_run "$name" 40 -sf "$HERE/sipp/simple_call.xml" -s 12345 \
    -t "${tr:0:1}1" -p "$port" -mp "$media" -m 3 -r 3 -l 3 -d 3000 \
    -cid_str "interop-simple-$tr-%u-%p@%s"
  local rc=$?
  if [ $rc -ne 0 ]; then
    result "$name" fail "SIPp exit $rc"; sipp_failed "$name"; return
  fi
  if $PY "$HERE/records.py" "$HTTP_PORT" check "interop-simple-$tr-" 3 \
      dialed=12345 caller=13900139000 hangup_by=caller hangup_reason=bye \
      sip_status=200 codec=PCMU ivr_path~welcome; then
    result "$name" ok "3 calls over ${tr^^}, each with its record (hangup by caller, bye)"
  else
    result "$name" fail "call records not as expected"
  fi
}

# --- test 2: baresip, 12333 balance with its own DTMF, audio checked ---------
t_baresip() {
  local name=baresip-12333-balance
  local dir=$WORK/baresip
  local sip=$((BASE + 40)) ctrl=$((BASE + 45))  # not sip+1: baresip takes that for SIP over TLS
  mkdir -p "$dir"
  # 120 s of silence as the microphone: baresip keeps sending RTP.
  sox -n -r 8000 -c 1 -b 16 -e signed-integer "$dir/silence.wav" trim 0 120
  hl_baresip_config "$dir" "$sip" "$ctrl" "$((BASE + 50))-$((BASE + 99))" "$dir/silence.wav"
  # No registration: a local account used only to place the call.
  echo '<sip:13800138002@127.0.0.1>;regint=0;audio_codecs=PCMU,PCMA' > "$dir/accounts"
  timeout -k 5 150 baresip -f "$dir" -t 140 > "$dir/baresip.log" 2>&1 &
  local bpid=$!
  hl_track "$bpid"
  # Same schedule as the SIPp scenario: wait for each prompt, then key.
  timeout -k 5 120 $PY "$HERE/baresip_call.py" "$ctrl" "sip:12333@127.0.0.1:$SIP_PORT" \
    11.5:1 12.8:1 10:110101199003071234# 5.5:123456# 20: > "$dir/driver.log" 2>&1
  local drc=$?
  cat "$dir/driver.log"
  # baresip closes the WAV files when the call ends and exits on "quit".
  for _ in $(seq 1 50); do kill -0 "$bpid" 2>/dev/null || break; sleep 0.1; done
  kill "$bpid" 2>/dev/null
  wait "$bpid" 2>/dev/null
  local cid
  cid=$(sed -n 's/^call-id: //p' "$dir/driver.log")
  if [ $drc -ne 0 ] || [ -z "$cid" ]; then
    result $name fail "baresip call failed (driver exit $drc)"
    grep -v '^\[' "$dir/baresip.log" | tail -n 30
    return
  fi
  local ok=1
  $PY "$HERE/records.py" "$HTTP_PORT" check "$cid" 1 \
    dialed=12333 caller=13800138002 self_service_result=balance_read \
    disposition=self_served hangup_by=caller hangup_reason=bye codec=PCMU language=zh || ok=0
  local wav
  wav=$(ls "$dir"/snd/dump-*-dec.wav 2>/dev/null | head -n 1)
  if [ -z "$wav" ]; then
    echo "baresip: no dump-*-dec.wav saved"; ok=0
  else
    # sndfile writes at the decoder's rate; make it 8 kHz mono 16-bit anyway.
    sox "$wav" -r 8000 -c 1 -b 16 -e signed-integer "$dir/heard.wav"
    $PY "$HERE/heard.py" "$dir/heard.wav" "$ROOT/prompts" \
      zh/welcome_12333,zh/choose_language,zh/menu_12333_main,zh/enter_id,zh/enter_pin,zh/balance_is,zh/last_paid_is \
      --absent zh/wrong_pin zh/account_not_found en/balance_is || ok=0
  fi
  if [ $ok = 1 ]; then
    result $name ok "baresip's DTMF; balance read; welcome..last_paid_is heard in order"
  else
    result $name fail "record or heard audio not as expected"
  fi
}

# --- run ---------------------------------------------------------------------
log "running: the three long calls at once (~80 s), then the plain calls"
t_sipp_balance   > "$WORK/out.1" 2>&1 & t1=$!
t_sipp_wrong_pin > "$WORK/out.2" 2>&1 & t2=$!
t_baresip        > "$WORK/out.3" 2>&1 & t3=$!
t_sipp_simple udp $((BASE + 12)) $((BASE + 28)) > "$WORK/out.4" 2>&1
t_sipp_simple tcp $((BASE + 13)) $((BASE + 32)) > "$WORK/out.5" 2>&1
wait $t1 $t2 $t3   # (not a bare wait: the daemon is a child too)
for f in "$WORK"/out.*; do cat "$f"; echo; done

# The agent queue: its own daemon (clock pinned to opening hours, agents
# registered), ports from BASE+300; results into $WORK for the tally.
hl_daemon_stop   # its records are checked; acd.sh starts its own
log "running: agent queue (acd.sh, ~140 s)"
HOTLINE_INTEROP_RESULTS=$WORK HOTLINE_INTEROP_ACD_PORT_BASE=$((BASE + 300)) \
  timeout -k 10 360 bash "$HERE/acd.sh" "$BIN"

# Five tests here, and acd.sh's (its TESTS=).
hl_tally $((5 + $(sed -n 's/^TESTS=//p' "$HERE/acd.sh")))
passed=$HL_PASSED failed=$HL_FAILED
if [ "$failed" -ne 0 ]; then
  echo "--- daemon log (tail) ---"
  grep -v 'DTMF digit' "$WORK/daemon.log" | tail -n 60
  echo "--- end of daemon log ---"
fi
log "done"
echo "interop: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
