# Shared helpers for the scripts that run the daemon against real SIP
# clients on 127.0.0.1: tests/interop/run.sh and bench/run.sh. Sourced, not
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
  while read -r pid; do
    [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null
  done < "$WORK/pids"
  sleep 0.2
  while read -r pid; do
    [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
  done < "$WORK/pids"
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
