#!/usr/bin/env bash
# Slowdown benchmark: runs one allocation-heavy workload natively, under heapscope (several
# configurations), under heaptrack and under valgrind memcheck, in one run, and prints wall
# times and slowdown ratios against native. Not a test: numbers go to docs/perf.md.
#
# usage: bench/run_slowdown.sh [BUILD_DIR] [PAIRS] [REPEATS]
#   BUILD_DIR  CMake build directory (default: build)
#   PAIRS      malloc/free pairs of the workload (default 5000000, i.e. 10^7 calls)
#   REPEATS    runs per configuration; the best (lowest) wall time counts (default 3)
set -euo pipefail

build=${1:-build}
pairs=${2:-5000000}
repeats=${3:-3}
workload="$build/bin/alloc_workload"
heapscope="$build/bin/heapscope"
[[ -x $workload && -x $heapscope ]] || { echo "build first: $workload, $heapscope missing" >&2; exit 2; }
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

# Best wall-clock seconds of REPEATS successful runs of the command; "failed" if none succeeded
# (heaptrack 1.4 sometimes aborts with std::bad_alloc on this workload; it is retried once).
best_time() {
  local best="" attempts=0
  while (( attempts < repeats + 1 )) && { [[ -z $best ]] || (( attempts < repeats )); }; do
    attempts=$((attempts + 1))
    local start end elapsed
    start=$(date +%s.%N)
    if ! "$@" > /dev/null 2> "$scratch/stderr"; then
      echo "  (a run failed: $(tail -1 "$scratch/stderr"))" >&2
      continue
    fi
    end=$(date +%s.%N)
    elapsed=$(echo "$end - $start" | bc -l)
    if [[ -z $best ]] || (( $(echo "$elapsed < $best" | bc -l) )); then best=$elapsed; fi
  done
  if [[ -z $best ]]; then echo failed; else printf '%.3f' "$best"; fi
}

declare -a names times
run() {
  local name=$1; shift
  names+=("$name")
  times+=("$(best_time "$@")")
  printf '  %-58s %8s s\n' "$name" "${times[-1]}" >&2
}

echo "workload: $pairs malloc/free pairs ($((pairs * 2)) calls), best of $repeats" >&2
run "native" "$workload" "$pairs"
run "heapscope (defaults: 32 frames, free stacks, quarantine)" "$heapscope" run -- "$workload" "$pairs"
run "heapscope --free-stacks=no" "$heapscope" run --free-stacks=no -- "$workload" "$pairs"
run "heapscope --free-stacks=no --quarantine-mib 0" "$heapscope" run --free-stacks=no --quarantine-mib 0 -- "$workload" "$pairs"
if command -v heaptrack > /dev/null; then
  run "heaptrack (records and interprets, as usually run)" heaptrack -o "$scratch/heaptrack" "$workload" "$pairs"
  # --raw only records; interpretation is left for later. This is heaptrack's in-process cost.
  run "heaptrack --raw (recording only)" heaptrack --raw -o "$scratch/heaptrack-raw" "$workload" "$pairs"
fi
if command -v valgrind > /dev/null; then
  # memcheck is slow; one run is enough to see the order of magnitude.
  saved_repeats=$repeats; repeats=1
  run "valgrind memcheck (--leak-check=full)" valgrind -q --leak-check=full "$workload" "$pairs"
  repeats=$saved_repeats
fi

native=${times[0]}
echo
printf '| %-55s | %10s | %9s |\n' "configuration" "wall (s)" "slowdown"
printf '|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..57})" "$(printf -- '-%.0s' {1..12})" "$(printf -- '-%.0s' {1..11})"
for i in "${!names[@]}"; do
  if [[ ${times[$i]} == failed ]]; then
    printf '| %-55s | %10s | %9s |\n' "${names[$i]}" failed "-"
  else
    printf '| %-55s | %10s | %8.1fx |\n' "${names[$i]}" "${times[$i]}" "$(echo "${times[$i]} / $native" | bc -l)"
  fi
done
