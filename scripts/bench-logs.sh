#!/usr/bin/env bash
# Throughput of `rootcause logs parse` (one thread and all cores) against the
# Python drain3 package on the same input, with peak memory of each.
#
#   scripts/bench-logs.sh            # 1,000,000 lines
#   LINES=3000000 scripts/bench-logs.sh
#
# Needs python3 with `pip install drain3`. The input is built from the
# Loghub samples in $ROOTCAUSE_SHARED_DIR/data/loghub (default ../shared).
set -euo pipefail
cd "$(dirname "$0")/.."
LINES=${LINES:-1000000}
SHARED=${ROOTCAUSE_SHARED_DIR:-$(cd .. && pwd)/shared}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
TARGET=${CARGO_TARGET_DIR:-target}
# The rootcause figures include reading the input and mining; writing the
# output goes to a file and is not timed (parse_seconds).

python3 -c 'import drain3' 2>/dev/null || {
  echo "the Python drain3 package is missing: pip install drain3" >&2
  exit 1
}
python3 scripts/drain3_bench.py make-input --loghub "$SHARED/data/loghub" --lines "$LINES" --out "$WORK/input.log"
cargo build --quiet --release -p rootcause-cli
BIN="$TARGET/release/rootcause"

field() { tr ' ' '\n' <"$1" | sed -n "s/^$2=//p"; }

"$BIN" logs parse --threads 1 --stats "$WORK/input.log" >"$WORK/out1.jsonl" 2>"$WORK/stats1"
"$BIN" logs parse --threads 0 --stats "$WORK/input.log" >"$WORK/outn.jsonl" 2>"$WORK/statsn"
cmp -s "$WORK/out1.jsonl" "$WORK/outn.jsonl" || { echo "single- and multi-threaded outputs differ" >&2; exit 1; }
python3 scripts/drain3_bench.py run --input "$WORK/input.log" >"$WORK/drain3.json"

one=$(field "$WORK/stats1" lines_per_second)
all=$(field "$WORK/statsn" lines_per_second)
threads=$(field "$WORK/statsn" threads)
json() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$WORK/drain3.json" "$1"; }
py=$(json lines_per_second)
# CPU time rates: on a machine shared with other work, wall-clock rates
# depend on the load; lines per CPU-second do much less.
cpu_rate() { python3 -c 'import sys; print(round(float(sys.argv[1]) / float(sys.argv[2])))' "$LINES" "$1"; }
one_cpu=$(cpu_rate "$(field "$WORK/stats1" cpu_seconds)")
py_cpu=$(cpu_rate "$(json cpu_seconds)")

printf '%-28s %14s %16s %14s %10s\n' "parser ($LINES lines)" "lines/s (wall)" "lines/CPU-second" "peak RSS KiB" "templates"
printf '%-28s %14s %16s %14s %10s\n' "rootcause, 1 thread" "$one" "$one_cpu" "$(field "$WORK/stats1" peak_rss_kib)" "$(field "$WORK/stats1" templates)"
printf '%-28s %14s %16s %14s %10s\n' "rootcause, $threads threads" "$all" "-" "$(field "$WORK/statsn" peak_rss_kib)" "$(field "$WORK/statsn" templates)"
printf '%-28s %14s %16s %14s %10s\n' "python drain3 (defaults)" "$py" "$py_cpu" "$(json peak_rss_kib)" "$(json templates)"
python3 -c 'import sys; a,b,c,d,e=map(float,sys.argv[1:]); print(f"ratio vs drain3 (wall): {a/c:.1f}x (1 thread), {b/c:.1f}x (all cores); per CPU-second: {d/e:.1f}x")' "$one" "$all" "$py" "$one_cpu" "$py_cpu"
