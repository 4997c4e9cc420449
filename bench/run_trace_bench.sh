#!/usr/bin/env bash
# Trace and analysis benchmark: records one workload with heapscope (--output) and heaptrack,
# then analyzes both (heapscope report, heaptrack_print) and prints, side by side: trace bytes
# per event, analysis time per event and the analyzer's peak RSS. Not a test: docs/trace-format.md
# and docs/perf.md keep the figures.
#
# usage: bench/run_trace_bench.sh [BUILD_DIR] [PAIRS]   (default: build, 1000000 pairs, "few" stacks)
set -euo pipefail

build=${1:-build}
pairs=${2:-1000000}
workload="$build/bin/alloc_workload"
heapscope="$build/bin/heapscope"
[[ -x $workload && -x $heapscope ]] || { echo "build first" >&2; exit 2; }
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
events=$((pairs * 2))

# Prints "seconds peak_kib" for a command, its output discarded.
measure() {
  /usr/bin/time -f "%e %M" -o "$scratch/time" "$@" > /dev/null 2> "$scratch/stderr" || {
    echo "failed: $*" >&2; tail -3 "$scratch/stderr" >&2; return 1; }
  cat "$scratch/time"
}

mkdir "$scratch/hs"
"$heapscope" run --quiet --output "$scratch/hs" -- "$workload" "$pairs" few 2> /dev/null
hs_bytes=$(cat "$scratch"/hs/*.trace.zst | wc -c)
read -r hs_seconds hs_kib < <(measure "$heapscope" report --quiet "$scratch/hs")

heaptrack -o "$scratch/ht" "$workload" "$pairs" few > /dev/null 2>&1
ht_file=$(ls "$scratch"/ht*.zst | head -1)
ht_bytes=$(wc -c < "$ht_file")
read -r ht_seconds ht_kib < <(measure heaptrack_print "$ht_file")

echo "workload: $pairs pairs ($events alloc/free events), few stacks"
printf '| %-22s | %14s | %18s | %19s | %16s |\n' tool "trace bytes" "bytes per event" "analysis ns/event" "analyzer peak RSS"
printf '|%s|%s|%s|%s|%s|\n' "------------------------" "----------------" "--------------------" "---------------------" "------------------"
row() {
  printf '| %-22s | %14s | %18.2f | %19.1f | %13s MiB |\n' "$1" "$2" "$(echo "$2 / $events" | bc -l)" \
    "$(echo "$3 * 1000000000 / $events" | bc -l)" "$(( $4 / 1024 ))"
}
row "heapscope report" "$hs_bytes" "$hs_seconds" "$hs_kib"
row "heaptrack_print" "$ht_bytes" "$ht_seconds" "$ht_kib"
