# Shared helpers for the scripts that run the daemon against real SIP
# clients on 127.0.0.1: tests/interop/run.sh, tests/interop/acd.sh and
# bench/run.sh. Sourced, not
# run. The caller sets, before sourcing:
#
#   HL_NAME   prefix of log lines and messages ("interop", "bench")
#   HL_KEEP   1: keep the work dir even on success
#   HL_OWN_SESSION  1: the daemon runs in a session of its own (setsid), so
#             with sched_autogroup it is scheduled as its own group, not
#             together with the load generator that started it
#
# and gets:
#
#   WORK      a fresh temp dir (removed on success unless HL_KEEP=1)
#   hl_log MSG...                  "NAME: [Ns] MSG" (seconds since sourcing)
#   hl_track PID                   kill PID on exit (TERM, then KILL)
#   hl_ports_free BASE COUNT       exit 2 unless BASE..BASE+COUNT-1 are free
#                                  on 127.0.0.1 (UDP and TCP)
#   hl_config ROOT FLOWS OUT [SED-EXPR...]
#                                  OUT = ROOT/config/hotline.toml with absolute
#                                  prompt and flow paths (FLOWS), then the
#                                  extra sed expressions
#   hl_daemon BIN CONFIG SIP HTTP RTP LOG
#                                  start the daemon (SIP and HTTP on
#                                  127.0.0.1:SIP/HTTP, RTP ports RTP, data
#                                  in $WORK/data); sets DAEMON_PID; waits for
#                                  /healthz (60 s), returns 1 if it is not up
#   hl_daemon_stop                 stop it (TERM, 5 s, KILL)
#   hl_result NAME ok|fail WHAT...  a "PASS  NAME: WHAT" / "FAIL ..." line and
#                                  $WORK/result.NAME (pass|fail) for the tally
#   hl_tally EXPECTED              count $WORK/result.*; sets HL_PASSED and
#                                  HL_FAILED (missing results count as failed)
#   hl_sipp NAME SIP_PORT TIMEOUT_S ARGS...
#                                  SIPp (under timeout) against the daemon on
#                                  127.0.0.1:SIP_PORT, traces $WORK/NAME.sipp-*
#   hl_sipp_failed NAME            the tails of those traces
#   hl_baresip_config DIR SIP_PORT CTRL_PORT RTP_LOW-HIGH MIC.wav
#                                  DIR/config for baresip 1.0 (no sound card:
#                                  MIC.wav as microphone, what it hears saved
#                                  as DIR/snd/dump-*-dec.wav, ctrl_tcp on
#                                  CTRL_PORT); the caller writes DIR/accounts
#   hl_tone OUT.wav FREQ SECONDS   a sine (8 kHz 16-bit mono, -6 dBFS)
#   hl_interop_init BASE ARGS...   the interop scripts' start: ARGS must be
#                                  one executable (else usage, exit 2); the
#                                  tools must be installed; sets BIN, ROOT,
#                                  BASE, SIP_PORT (BASE), HTTP_PORT (BASE+1),
#                                  RTP_PORTS (BASE+100..+199), PY
#
# On exit (trap set here) the daemon is stopped (hl_daemon_stop), every
# tracked pid TERM then KILL, and the work dir is removed if the script
# exits 0 (and HL_KEEP is not 1), else kept and named.

HL_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/hotline-${HL_NAME:?}.XXXXXX")
HL_START=$(date +%s)
DAEMON_PID=
: > "$WORK/pids"

hl_log() { echo "$HL_NAME: [$(( $(date +%s) - HL_START ))s] $*"; }

hl_track() { echo "$1" >> "$WORK/pids"; }

# hl_daemon_stop: SIGTERM to the daemon, SIGKILL if it is still there after 5 s.
hl_daemon_stop() {
  if [ -n "$DAEMON_PID" ] && kill -0 "$DAEMON_PID" 2>/dev/null; then
    kill -TERM "$DAEMON_PID" 2>/dev/null
    for _ in $(seq 1 50); do kill -0 "$DAEMON_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$DAEMON_PID" 2>/dev/null
    wait "$DAEMON_PID" 2>/dev/null
  fi
  DAEMON_PID=
}

hl_cleanup() {
  local rc=$?
  hl_daemon_stop
  # A tracked `timeout` passes TERM on to its child; the child (baresip
  # unregistering) may outlive the KILL to `timeout`, so its children are
  # collected first and killed too.
  local kids=()
  while read -r pid; do
    [ -n "$pid" ] || continue
    kids+=($(pgrep -P "$pid" 2>/dev/null))
    kill -TERM "$pid" 2>/dev/null
  done < "$WORK/pids"
  sleep 0.2
  while read -r pid; do
    [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
  done < "$WORK/pids"
  for pid in "${kids[@]}"; do kill -KILL "$pid" 2>/dev/null; done
  if [ "$rc" -eq 0 ] && [ "${HL_KEEP:-0}" != 1 ]; then
    rm -rf "$WORK"
  else
    echo "$HL_NAME: work dir kept: $WORK"
  fi
  exit "$rc"
}
trap hl_cleanup EXIT
trap 'exit 130' INT TERM

hl_ports_free() {
  local base=$1 count=$2
  python3 - "$base" "$count" <<'EOF' && return 0
import socket, sys
base, count = int(sys.argv[1]), int(sys.argv[2])
for p in range(base, base + count):
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        s = socket.socket(socket.AF_INET, kind)
        if kind == socket.SOCK_STREAM:
            # As the daemon's listener: a TIME-WAIT left by the last run's
            # HTTP probe does not make the port busy.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", p))
        except OSError:
            print(f"port {p} in use", file=sys.stderr); sys.exit(1)
        finally:
            s.close()
EOF
  echo "$HL_NAME: ports $base..$((base + count - 1)) busy; choose another base port" >&2
  exit 2
}

# Relative paths in the config are relative to the config file's folder, so
# the temp copy points prompts and flows at absolute folders.
hl_config() {
  local root=$1 flows=$2 out=$3; shift 3
  local exprs=(-e "s#^prompts = .*#prompts = \"$root/prompts\"#"
               -e "s#^flows = .*#flows = \"$flows\"#")
  local e
  for e in "$@"; do exprs+=(-e "$e"); done
  sed "${exprs[@]}" "$root/config/hotline.toml" > "$out"
  grep -q "^prompts = \"$root/prompts\"" "$out" && grep -q "^flows = \"$flows\"" "$out" ||
    { echo "$HL_NAME: could not set [paths] in the temp config" >&2; exit 2; }
}

hl_daemon() {
  local bin=$1 config=$2 sip=$3 http=$4 rtp=$5 log=$6
  local own=()
  [ "${HL_OWN_SESSION:-0}" = 1 ] && own=(setsid)
  NO_COLOR=1 "${own[@]}" "$bin" --config "$config" serve \
    --sip-listen "127.0.0.1:$sip" --http-listen "127.0.0.1:$http" \
    --rtp-ports "$rtp" --data-dir "$WORK/data" > "$log" 2>&1 &
  DAEMON_PID=$!
  python3 "$HL_LIB_DIR/records.py" "$http" health 60
}

hl_result() {
  local name=$1 status=$2; shift 2
  if [ "$status" = ok ]; then
    echo "PASS  $name: $*"; echo pass > "$WORK/result.$name"
  else
    echo "FAIL  $name: $*"; echo fail > "$WORK/result.$name"
  fi
}

hl_tally() {
  local expected=$1
  HL_PASSED=$(grep -lx pass "$WORK"/result.* 2>/dev/null | wc -l)
  HL_FAILED=$(grep -Lx pass "$WORK"/result.* 2>/dev/null | wc -l)
  if [ $((HL_PASSED + HL_FAILED)) -ne "$expected" ]; then
    echo "FAIL  harness: $((HL_PASSED + HL_FAILED)) results for $expected tests"
    HL_FAILED=$((expected - HL_PASSED))
  fi
}

hl_sipp() {
  local name=$1 sip=$2 secs=$3; shift 3
  timeout -k 5 "$((secs + 10))" sipp "127.0.0.1:$sip" -i 127.0.0.1 -mi 127.0.0.1 \
    -nostdin -trace_msg -message_file "$WORK/$name.sipp-msg.log" \
    -trace_err -error_file "$WORK/$name.sipp-err.log" \
    -trace_screen -screen_file "$WORK/$name.sipp-screen.log" \
    -timeout "${secs}s" -timeout_error "$@" > "$WORK/$name.sipp-out.log" 2>&1 &
  local pid=$!
  hl_track "$pid"
  wait "$pid"
}

hl_sipp_failed() {
  local name=$1
  tail -n 25 "$WORK/$name.sipp-screen.log" 2>/dev/null
  tail -n 20 "$WORK/$name.sipp-err.log" 2>/dev/null
}

# baresip 1.0 config. Workarounds:
# - net_interface 127.0.0.1, or it advertises another local address.
# - there is no sound card: the player is aubridge (a bridge device with
#   no source on the other side, so it just takes the audio); what was
#   heard is saved by the sndfile filter, which runs on the decode path
#   before the player, as dump-*-dec.wav (8 kHz 16-bit for G.711).
# - aufile stops the source at the end of the file: make MIC.wav longer
#   than the call.
# - no ALSA, no STUN/TURN/ICE modules: nothing reaches off the machine.
hl_baresip_config() {
  local dir=$1 sip=$2 ctrl=$3 rtp=$4 mic=$5
  mkdir -p "$dir/snd"
  cat > "$dir/config" <<EOF
poll_method		epoll
sip_listen		127.0.0.1:$sip
net_interface		127.0.0.1
call_local_timeout	120
call_max_calls		1
audio_player		aubridge,nowhere
audio_alert		aubridge,nowhere
audio_source		aufile,$mic
rtp_ports		$rtp
module_path		/usr/lib/baresip/modules
module			g711.so
module			aufile.so
module			aubridge.so
module			sndfile.so
module_tmp		account.so
module_app		menu.so
module_app		ctrl_tcp.so
ctrl_tcp_listen		127.0.0.1:$ctrl
snd_path		$dir/snd
EOF
}

hl_tone() {
  sox -n -r 8000 -c 1 -b 16 -e signed-integer "$1" synth "$3" sine "$2" vol 0.5
}

hl_interop_init() {
  local base=$1; shift
  local fail=
  if [ $# -ne 1 ]; then
    echo "usage: $0 path/to/hotline" >&2; fail=1
  elif [ ! -x "$1" ]; then
    echo "$HL_NAME: $1 is not an executable" >&2; fail=1
  fi
  local tool
  for tool in sipp baresip sox python3 timeout pgrep; do
    command -v "$tool" >/dev/null || { echo "$HL_NAME: $tool not installed" >&2; fail=1; }
  done
  if [ -n "$fail" ]; then
    trap - EXIT; rm -rf "$WORK"; exit 2
  fi
  BIN=$(readlink -f "$1")
  ROOT=$(cd "$HL_LIB_DIR/../.." && pwd)
  BASE=$base
  SIP_PORT=$base
  HTTP_PORT=$((base + 1))
  RTP_PORTS="$((base + 100))-$((base + 199))"
  PY=python3
}
