# Helpers of the benchmarks (bench/run.sh, bench/bridged.sh,
# bench/faults.sh). Defines functions only; those that measure need
# SIP_PORT, SIPP_PORT, SIPP_MEDIA, RTP_LOW, RTP_HIGH and CLK_TCK set when
# they run.
#
#   bench_tools TOOL...     exit 2 unless every TOOL is installed
#   bench_bin ROOT          sets BIN: HOTLINE_BENCH_BIN, or
#                           ROOT/target/release/hotline (built with
#                           `nice -n 19 cargo build --release` when missing,
#                           or always with HOTLINE_BENCH_BUILD=1)
#   bench_ports BASE        SIP_PORT +0, HTTP_PORT +1, SIPP_PORT +2,
#                           AGENT_PORT +3, AGENT_MEDIA +6, SIPP_MEDIA +10,
#                           RTP_LOW +4000 .. RTP_HIGH +13999
#   ticks PID               utime+stime of PID (all threads), clock ticks
#   cpu_pct T0 T1 SECS      ticks over SECS as % of one core
#   now / elapsed A B       wall clock (s.ns) / B - A
#   load                    /proc/loadavg's three averages
#   busy                    all CPUs' busy ticks so far (/proc/stat)
#   calm_wait               up to CALM_SECS (60) s for a second in which the
#                           machine used < CALM_PCT (50) % of one core
#   idle_wait               until the daemon holds no RTP port (30 s at most)
#   stat_field CSV NAME     NAME's value in a SIPp -trace_stat CSV's last line
#   sipp_bg NAME SECS ARGS  SIPp in the background in $WORK (stats, errors,
#                           screen in $WORK/NAME.*), own session, under
#                           timeout; sets SIPP_PID (SIPP_LOCAL_PORT and
#                           SIPP_LOCAL_MEDIA override -p and -mp)
#   sipp_proc               the sipp process under SIPP_PID (for its CPU)

bench_tools() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null || { echo "bench: $tool not installed" >&2; exit 2; }
  done
}
bench_bin() {
  BIN=${HOTLINE_BENCH_BIN:-$1/target/release/hotline}
  if [ "${HOTLINE_BENCH_BUILD:-0}" = 1 ] || { [ -z "${HOTLINE_BENCH_BIN:-}" ] && [ ! -x "$BIN" ]; }; then
    (cd "$1" && nice -n 19 cargo build --release) || exit 2
  fi
  BIN=$(readlink -f "$BIN")
  [ -x "$BIN" ] || { echo "bench: $BIN is not an executable" >&2; exit 2; }
}
bench_ports() {
  SIP_PORT=$1
  HTTP_PORT=$(($1 + 1))
  SIPP_PORT=$(($1 + 2))
  AGENT_PORT=$(($1 + 3))
  AGENT_MEDIA=$(($1 + 6))
  SIPP_MEDIA=$(($1 + 10))
  RTP_LOW=$(($1 + 4000))
  RTP_HIGH=$(($1 + 13999))
}
ticks() {
  local s
  s=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
  s=${s##*) }
  set -- $s   # fields from 3 (state) on: utime is field 14, stime 15
  echo $(( ${12} + ${13} ))
}
cpu_pct() {
  awk -v a="$1" -v b="$2" -v s="$3" -v hz="$CLK_TCK" 'BEGIN { printf "%.0f", (b - a) / hz / s * 100 }'
}
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
load() { cut -d' ' -f1-3 /proc/loadavg; }
busy() {
  awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat
}
calm_wait() {
  local b0 b1 o i
  for i in $(seq 1 "${CALM_SECS:-60}"); do
    b0=$(busy); sleep 1; b1=$(busy)
    o=$(cpu_pct "$b0" "$b1" 1)
    [ "$o" -lt "${CALM_PCT:-50}" ] && { [ "$i" -gt 1 ] && hl_log "waited ${i} s for a calm machine"; return 0; }
  done
  hl_log "machine busy (others at $o % of a core); going on"
}
idle_wait() {
  local n
  for _ in $(seq 1 60); do
    n=$(ss -Hun "( sport >= :$RTP_LOW and sport <= :$RTP_HIGH )" | wc -l)
    [ "$n" -eq 0 ] && return 0
    sleep 0.5
  done
  hl_log "daemon still holds $n RTP ports after 30 s"
}
stat_field() {
  awk -F';' -v name="$2" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == name) c = i; next }
    { v = $c } END { print (c && v != "") ? v : 0 }' "$1"
}
sipp_bg() {
  local name=$1 secs=$2; shift 2
  (cd "$WORK" && exec setsid timeout -k 5 "$((secs + 10))" sipp "127.0.0.1:$SIP_PORT" \
    -i 127.0.0.1 -mi 127.0.0.1 -p "${SIPP_LOCAL_PORT:-$SIPP_PORT}" -mp "${SIPP_LOCAL_MEDIA:-$SIPP_MEDIA}" -nostdin \
    -trace_stat -stf "$WORK/$name.stat.csv" -fd 1 \
    -trace_err -error_file "$WORK/$name.err.log" \
    -trace_screen -screen_file "$WORK/$name.screen.log" \
    -timeout "${secs}s" "$@" > "$WORK/$name.out.log" 2>&1) &
  SIPP_PID=$!
  hl_track "$SIPP_PID"
}
sipp_proc() {
  local p
  for _ in $(seq 1 40); do
    p=$(pgrep -P "$SIPP_PID" -x sipp | head -n 1)
    [ -n "$p" ] && { echo "$p"; return; }
    sleep 0.05
  done
  echo 0
}
