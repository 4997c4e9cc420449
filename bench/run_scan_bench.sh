#!/usr/bin/env bash
# Leak scan benchmark: builds a heap of BLOCKS blocks of SIZE bytes (bench/scan_workload.c: nine
# in ten reachable from a global, one in ten in a lost list) and times the exit leak scan of
# heapscope (the agent's own measure, in the JSON report) against valgrind memcheck's (the
# difference between --leak-check=full and --leak-check=no on the same run). Also prints the
# whole run's wall time with the scan and without it (--leak-check=no). Not a test: docs/perf.md
# keeps the figures.
#
# usage: bench/run_scan_bench.sh [BUILD_DIR] [BLOCKS] [SIZE] [--no-valgrind]
#   default: build, 10000000 blocks of 100 bytes (about 1 GiB)
set -euo pipefail

build=${1:-build}
blocks=${2:-10000000}
size=${3:-100}
with_valgrind=yes
[[ ${4:-} == --no-valgrind ]] && with_valgrind=no
workload="$build/bin/scan_workload"
heapscope="$build/bin/heapscope"
[[ -x $workload && -x $heapscope ]] || { echo "build first" >&2; exit 2; }
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

# Prints the wall seconds of a command, its output discarded.
seconds() {
  /usr/bin/time -f "%e" -o "$scratch/time" "$@" > /dev/null 2> "$scratch/stderr" || {
    echo "failed: $*" >&2; tail -3 "$scratch/stderr" >&2; return 1; }
  cat "$scratch/time"
}

with_scan=$(seconds "$heapscope" run --quiet --json "$scratch/report.json" -- "$workload" "$blocks" "$size")
without_scan=$(seconds "$heapscope" run --quiet --leak-check=no -- "$workload" "$blocks" "$size")
read -r scan_seconds heap_bytes definite indirect reachable < <(python3 - "$scratch/report.json" <<'PY'
import json, sys
process = json.load(open(sys.argv[1]))["processes"][0]
leaks = process["summary"]["leaks"]
print(process["leak_scan"]["duration_seconds"], process["leak_scan"]["heap_bytes"],
      leaks["definite"]["blocks"], leaks["indirect"]["blocks"], leaks["reachable"]["blocks"])
PY
)
echo "heap: $blocks blocks of $size bytes; heapscope found $definite definite, $indirect indirect, $reachable reachable"
printf '| %-30s | %12s |\n' measure seconds
printf '|%s|%s|\n' "--------------------------------" "--------------"
printf '| %-30s | %12.2f |\n' "heapscope exit scan" "$scan_seconds"
printf '| %-30s | %12.2f |\n' "heapscope run, with the scan" "$with_scan"
printf '| %-30s | %12.2f |\n' "heapscope run, --leak-check=no" "$without_scan"
if [[ $with_valgrind == yes ]] && command -v valgrind > /dev/null; then
  full=$(seconds valgrind -q --leak-check=full "$workload" "$blocks" "$size")
  none=$(seconds valgrind -q --leak-check=no "$workload" "$blocks" "$size")
  memcheck=$(echo "$full - $none" | bc -l)
  printf '| %-30s | %12.2f |\n' "memcheck leak check" "$memcheck"
  printf '| %-30s | %12.2f |\n' "memcheck run, --leak-check=full" "$full"
  echo "memcheck's leak check / heapscope's scan: $(echo "$memcheck / $scan_seconds" | bc -l | xargs printf '%.1f')x"
fi
echo "per GiB of heap: $(echo "$scan_seconds * 1073741824 / $heap_bytes" | bc -l | xargs printf '%.2f') s"
