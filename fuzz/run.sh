#!/usr/bin/env bash
# Runs every cargo-fuzz target for a bounded time, then replays every input
# kept under fuzz/regressions/<target>/ through its target. Exits non-zero
# on any crash (panic, timeout, out-of-memory), naming the target and the
# input. Used by .ci/run; by hand: `bash fuzz/run.sh`, or
# `FUZZ_SECONDS=300 bash fuzz/run.sh` for a longer run.
#
#   FUZZ_SECONDS  seconds of fuzzing per target (default 30; 0 skips the
#                 fuzzing and only replays the seeds and regressions)
#   FUZZ_JOBS     targets fuzzed at once (default: the number of cores)
#   FUZZ_TARGETS  space-separated subset of the targets (default: all)
#   FUZZ_TARGET_DIR  cargo's target folder for the fuzz build (default
#                 fuzz/target; CARGO_TARGET_DIR is not used, the fuzz build's
#                 flags differ from the daemon's)
#
# Needs a nightly toolchain (cargo fuzz builds with unstable rustc options);
# without one, the stable toolchain is used with RUSTC_BOOTSTRAP=1, which
# unlocks the same options. cargo-fuzz is installed from crates.io if it is
# missing.
set -euo pipefail
cd "$(dirname "$0")/.."

SECS="${FUZZ_SECONDS:-30}"
JOBS="${FUZZ_JOBS:-$(nproc)}"
ALL_TARGETS=(sip_message sdp rtp rfc4733 config)
read -r -a TARGETS <<<"${FUZZ_TARGETS:-${ALL_TARGETS[*]}}"
start=$(date +%s)
say() { echo "fuzz: $* ($(( $(date +%s) - start ))s)"; }

# The toolchain.
if rustup run nightly rustc --version >/dev/null 2>&1; then
  CARGO=(cargo +nightly)
  say "toolchain: $(rustup run nightly rustc --version)"
else
  export RUSTC_BOOTSTRAP=1
  CARGO=(cargo)
  say "toolchain: no nightly; $(rustc --version) with RUSTC_BOOTSTRAP=1"
fi

# cargo-fuzz.
if ! cargo fuzz --version >/dev/null 2>&1; then
  say "installing cargo-fuzz"
  # --debug: it only drives cargo, and builds in half the time.
  cargo install cargo-fuzz --locked --debug --version '^0.13' 2>&1 | tail -n 2
fi
say "$(cargo fuzz --version)"

# One build of every target. No sanitizer: the fuzzed code is safe Rust,
# where AddressSanitizer finds nothing a panic would not, at half the speed;
# 16 codegen units build several times faster than cargo-fuzz's default 1.
TARGET_DIR="${FUZZ_TARGET_DIR:-fuzz/target}"
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR="$PWD/$TARGET_DIR" ;; esac
BUILD_FLAGS=(--sanitizer none --codegen-units 16 --target-dir "$TARGET_DIR")
LOGS="$TARGET_DIR/logs"
mkdir -p "$LOGS"
say "building ${ALL_TARGETS[*]}"
if ! "${CARGO[@]}" fuzz build "${BUILD_FLAGS[@]}" >"$LOGS/build.log" 2>&1; then
  tail -n 40 "$LOGS/build.log" >&2
  echo "fuzz: FAILED to build the fuzz targets" >&2
  exit 1
fi
grep -Ev '^\s+(Compiling|Downloaded|Downloading) ' "$LOGS/build.log" || true
host=$(rustc -vV | sed -n 's/^host: //p')
BIN="$TARGET_DIR/$host/release"
for t in "${TARGETS[@]}"; do
  [ -x "$BIN/$t" ] || { echo "fuzz: build failed: no $BIN/$t" >&2; exit 1; }
done
say "built"

failed=()

# Bounded fuzzing, JOBS targets at a time. New inputs go to a scratch
# corpus in the target folder, emptied first so every run starts from the
# seeds alone (and takes the same time); the committed seeds are never
# touched. Crashers go to fuzz/artifacts/<target>/.
fuzz_one() {
  local t=$1 scratch="$TARGET_DIR/corpus/$1" art="fuzz/artifacts/$1"
  rm -rf "$scratch"
  local dict=()
  [ -f "fuzz/dict/$t.dict" ] && dict=(-dict="fuzz/dict/$t.dict")
  mkdir -p "$scratch" "$art"
  "$BIN/$t" "$scratch" "fuzz/corpus/$t" "${dict[@]}" \
    -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$art/" -print_final_stats=1 \
    >"$LOGS/$t.log" 2>&1
}
report() {
  local t=$1 rc=$2 log="$LOGS/$1.log"
  local runs rate
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
  if [ "$rc" -eq 0 ]; then
    say "$t: ok, ${runs:-?} executions, ${rate:-?} exec/s; $(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1 | sed 's/^#[0-9]* *DONE *//')"
  else
    say "$t: CRASH (exit $rc)"
    tail -n 60 "$log" | sed "s/^/  $t | /"
    local input
    input=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
    echo "fuzz: FAILED target $t, input ${input:-(see $log)}" >&2
    failed+=("$t ${input:-?}")
  fi
}
if [ "$SECS" -gt 0 ]; then
  say "fuzzing each target for ${SECS}s, $JOBS at a time"
  for t in "${TARGETS[@]}"; do
    rm -f "$LOGS/$t.rc"
    while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n || true; done
    ( rc=0; fuzz_one "$t" || rc=$?; echo "$rc" >"$LOGS/$t.rc" ) &
  done
  wait
  for t in "${TARGETS[@]}"; do report "$t" "$(cat "$LOGS/$t.rc" 2>/dev/null || echo 1)"; done
fi

# Every kept crasher, one at a time, so a failure names its input.
say "replaying fuzz/regressions/"
replayed=0
for t in "${TARGETS[@]}"; do
  dir="fuzz/regressions/$t"
  [ -d "$dir" ] || continue
  for f in "$dir"/*; do
    [ -f "$f" ] || continue
    [ "$(basename "$f")" = README.md ] && continue
    replayed=$((replayed + 1))
    if ! "$BIN/$t" -runs=1 "$f" >"$LOGS/replay.log" 2>&1; then
      tail -n 30 "$LOGS/replay.log" | sed "s/^/  $t | /"
      echo "fuzz: FAILED target $t, regression input $f" >&2
      failed+=("$t $f")
    fi
  done
done
say "replayed $replayed regression inputs"

if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzz: ${#failed[@]} failure(s):" >&2
  printf '  %s\n' "${failed[@]}" >&2
  exit 1
fi
say "no crash"
