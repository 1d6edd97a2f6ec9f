# The bridged benchmarks' set-up (bench/bridged.sh, bench/faults.sh), sourced
# after tests/interop/lib.sh and bench/lib.sh with ROOT, HERE, BIN, WORK,
# AGENTS and the ports (SIP_PORT, HTTP_PORT, AGENT_PORT, AGENT_MEDIA,
# RTP_LOW, RTP_HIGH) set: writes $WORK/hotline.toml (queue `bench`, AGENTS
# agents b0001.., not recording) and $WORK/hotline-rec.toml (recording),
# $WORK/agents.csv and $WORK/caller.wav; defines
#
#   db SQL ARGS...          one value from $WORK/data/hotline.db (read-only)
#   start_daemon NAME       a fresh data dir and daemon on $CONFIG (KEEP_DATA=1
#                           keeps the data dir); sets DAEMON_PID, IDLE_RSS
#   agents_up NAME N SECS   N agents registered, answering for SECS s
#   wait_for_bench_run      never load the machine while bench/run.sh does
#   udp_drops FILE LOW HIGH kernel drops of sockets bound to LOW..HIGH

# --- config, agents, caller audio ---------------------------------------------
hl_config "$ROOT" "$HERE/flows-bridged" "$WORK/hotline.toml" \
  's#^max_calls = .*#max_calls = 6000#' \
  's#^timeout_secs = .*#timeout_secs = 20#' \
  's#^address = "0.0.0.0"#address = "127.0.0.1"#' \
  's#^seed_demo = .*#seed_demo = false#' \
  's#^keepalive_secs = .*#keepalive_secs = 0#' \
  's#^max_bindings_per_source = .*#max_bindings_per_source = 10000#' \
  "s#^realtime_priority = .*#realtime_priority = ${BENCH_RT_PRIORITY:-10}#" \
  "s#^\# media_threads = .*#${BENCH_MEDIA_THREADS:+media_threads = $BENCH_MEDIA_THREADS}#"
python3 - "$WORK" "$AGENTS" <<'EOF_PY' || exit 2
import hashlib, sys
work, n = sys.argv[1], int(sys.argv[2])
users = [(f"b{i:04d}", f"pw-b{i:04d}") for i in range(1, n + 1)]
with open(f"{work}/hotline.toml", "a") as f:
    f.write('\n[[acd.queues]]\nname = "bench"\nring_timeout_secs = 5\nmax_wait_secs = 120\n'
            'max_len = 2000\nwhen_no_agents = "join"\nannounce_every_secs = 0\nrecord = false\n')
    for u, p in users:
        ha1 = hashlib.md5(f"{u}:hotline:{p}".encode()).hexdigest()
        f.write(f'\n[[registrar.users]]\nuser = "{u}"\nha1_md5 = "{ha1}"\n')
        f.write(f'\n[[acd.agents]]\nid = "{u}"\nname = "Bench {u}"\nextension = "{u}"\n'
                'queues = ["bench"]\nwrap_up_secs = 0\nlogin_on_register = true\n')
with open(f"{work}/agents.csv", "w") as f:
    f.write("SEQUENTIAL\n" + "".join(
        f"{u};[authentication username={u} password={p}]\n" for u, p in users))
# 60 s of PCMA frames: a 4-byte frame counter, then A-law silence.
with open(f"{work}/caller.wav", "wb") as f:
    for i in range(3000):
        f.write(i.to_bytes(4, "big") + b"\xd5" * 156)
EOF_PY
sed 's#^record = false#record = true#' "$WORK/hotline.toml" > "$WORK/hotline-rec.toml"
for c in hotline hotline-rec; do
  "$BIN" check-config --config "$WORK/$c.toml" > "$WORK/check-config.log" 2>&1 ||
    { echo "bench: config rejected"; cat "$WORK/check-config.log"; exit 2; }
done
CONFIG=$WORK/hotline.toml

# udp_drops FILE LOW HIGH: of the /proc/net/udp snapshots in FILE, the
# drops of the sockets bound to LOW..HIGH (each socket's last count, by
# inode, summed).
udp_drops() {
  awk -v lo="$2" -v hi="$3" '
    $1 ~ /^[0-9]+:$/ {
      split($2, a, ":"); port = strtonum("0x" a[2])
      if (port >= lo && port <= hi) d[$10] = $NF
    }
    END { s = 0; for (i in d) s += d[i]; print s }' "$1"
}

# db SQL ARGS...: one value from the SQLite file (read-only).
db() {
  python3 - "$WORK/data/hotline.db" "$@" <<'EOF_PY'
import sqlite3, sys
db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True, timeout=5)
print(db.execute(sys.argv[2], sys.argv[3:]).fetchone()[0])
EOF_PY
}

start_daemon() {
  [ "${KEEP_DATA:-0}" = 1 ] || rm -rf "$WORK/data"
  if ! HOTLINE_LOG=${HOTLINE_LOG:-info} hl_daemon "$BIN" "$CONFIG" \
      "$SIP_PORT" "$HTTP_PORT" "$RTP_LOW-$RTP_HIGH" "$WORK/daemon.log.$1"; then
    echo "bench: daemon did not start"; tail -n 40 "$WORK/daemon.log.$1"; exit 1
  fi
  sleep 2
  IDLE_RSS=$(awk '/^VmRSS:/ {print $2}' "/proc/$DAEMON_PID/status")
  hl_log "daemon up (pid $DAEMON_PID, idle RSS $IDLE_RSS KiB, log daemon.log.$1)"
}

# agents_up NAME N SECS: register N agents, then answer calls for SECS s;
# sets AGENT_SIPP (the `timeout` pid) and LOGINS (login rows seen).
agents_up() {
  local name=$1 n=$2 secs=$3
  SIPP_LOCAL_PORT=$AGENT_PORT SIPP_LOCAL_MEDIA=$AGENT_MEDIA \
    sipp_bg "$name-reg" 30 -sf "$HERE/sipp/agent_register.xml" -inf "$WORK/agents.csv" \
    -r 400 -m "$n" -l 400
  wait "$SIPP_PID" 2>/dev/null
  # All agents' RTP comes to the one echo socket of this SIPp: 50 packets/s
  # per call, in bursts (the callers' SIPp sends each 20 ms tick's packets
  # at once). With the kernel's default receive buffer (~200 packets) that
  # socket overflows from some 1,000 calls on, and the agents' side of the
  # load falls short. SIPp sets no buffer size itself, so it is started
  # with a larger default (AGENT_RCVBUF bytes), put back once SIPp has
  # bound its sockets; the daemon's RTP sockets, bound per call later, get
  # the machine's own default. Drops at SIPp's sockets are reported.
  local rmem; rmem=$(cat /proc/sys/net/core/rmem_default)
  echo "${AGENT_RCVBUF:-33554432}" > /proc/sys/net/core/rmem_default 2>/dev/null ||
    hl_log "cannot raise net.core.rmem_default: the agents' echo socket may overflow"
  SIPP_LOCAL_PORT=$AGENT_PORT SIPP_LOCAL_MEDIA=$AGENT_MEDIA \
    sipp_bg "$name-agents" "$secs" -sf "$HERE/sipp/agent_answer.xml" -rtp_echo
  AGENT_SIPP=$SIPP_PID
  for _ in $(seq 1 40); do
    ss -Hun "( sport = :$AGENT_MEDIA )" | grep -q . && break
    sleep 0.05
  done
  echo "$rmem" > /proc/sys/net/core/rmem_default 2>/dev/null
  LOGINS=0
  for _ in $(seq 1 20); do
    LOGINS=$(db "SELECT count(*) FROM queue_events WHERE kind = 'login'" 2>/dev/null || echo 0)
    [ "$LOGINS" -ge "$n" ] && break
    sleep 0.5
  done
  hl_log "$name: $LOGINS of $n agents logged in"
}

# wait_for_bench_run: never load the machine while bench/run.sh does.
wait_for_bench_run() {
  for i in $(seq 1 120); do
    pgrep -f 'bench/run\.sh' > /dev/null || { [ "$i" -gt 1 ] && hl_log "waited for bench/run.sh"; return 0; }
    sleep 5
  done
  echo "bench: bench/run.sh still running after 10 min" >&2; exit 2
}

