#!/usr/bin/env bash
# Slowdown benchmark: runs one allocation-heavy workload natively, under heapscope (several
# configurations), under heaptrack and under valgrind memcheck, in one run, and prints wall
# times and slowdown ratios against native. Two stack shapes: "few" (one call path at 29
# depths, 12..40 frames: like most programs) and "many" (random paths: tens of thousands of
# distinct stacks). Not a test: numbers go to docs/perf.md.
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
command -v bc > /dev/null || { echo "bc is needed (scripts/install-deps.sh)" >&2; exit 2; }
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

# Best wall-clock seconds of REPEATS successful runs; "failed" after two failures in a row
# (heaptrack 1.4 aborts with std::bad_alloc on the "many" shape, see docs/perf.md).
best_time() {
  local best="" successes=0 failures=0
  while (( successes < repeats && failures < 2 )); do
    local start end elapsed
    start=$(date +%s.%N)
    if ! "$@" > /dev/null 2> "$scratch/stderr"; then
      failures=$((failures + 1))
      echo "    (a run failed: $(tail -1 "$scratch/stderr"))" >&2
      continue
    fi
    end=$(date +%s.%N)
    failures=0
    successes=$((successes + 1))
    elapsed=$(echo "$end - $start" | bc -l)
    if [[ -z $best ]] || (( $(echo "$elapsed < $best" | bc -l) )); then best=$elapsed; fi
  done
  if [[ -z $best ]]; then echo failed; else printf '%.3f' "$best"; fi
}

for shape in few many; do
  names=() times=()
  run() {
    local name=$1; shift
    names+=("$name")
    times+=("$(best_time "$@")")
    printf '  %-62s %8s s\n' "$name" "${times[-1]}" >&2
  }
  echo "workload: $pairs malloc/free pairs ($((pairs * 2)) calls), stacks: $shape, best of $repeats" >&2
  run "native" "$workload" "$pairs" "$shape"
  run "heapscope, defaults" "$heapscope" run -- "$workload" "$pairs" "$shape"
  run "heapscope --free-stacks=no" "$heapscope" run --free-stacks=no -- "$workload" "$pairs" "$shape"
  run "heapscope --free-stacks=no --quarantine-mib 0 (heaptrack's features)" \
    "$heapscope" run --free-stacks=no --quarantine-mib 0 -- "$workload" "$pairs" "$shape"
  if command -v heaptrack > /dev/null; then
    run "heaptrack (records and interprets, as usually run)" heaptrack -o "$scratch/ht" "$workload" "$pairs" "$shape"
    # --raw only records; interpretation is left for later: heaptrack's in-process cost.
    run "heaptrack --raw (recording only)" heaptrack --raw -o "$scratch/ht-raw" "$workload" "$pairs" "$shape"
  fi
  if command -v valgrind > /dev/null; then
    saved_repeats=$repeats; repeats=1  # memcheck is slow; one run shows the order of magnitude
    run "valgrind memcheck --leak-check=full" valgrind -q --leak-check=full "$workload" "$pairs" "$shape"
    repeats=$saved_repeats
  fi
  native=${times[0]}
  echo
  echo "stacks: $shape"
  printf '| %-70s | %9s | %9s |\n' "configuration" "wall (s)" "slowdown"
  printf '|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..72})" "$(printf -- '-%.0s' {1..11})" "$(printf -- '-%.0s' {1..11})"
  for i in "${!names[@]}"; do
    if [[ ${times[$i]} == failed ]]; then
      printf '| %-70s | %9s | %9s |\n' "${names[$i]}" failed "-"
    else
      printf '| %-70s | %9s | %8.1fx |\n' "${names[$i]}" "${times[$i]}" "$(echo "${times[$i]} / $native" | bc -l)"
    fi
  done
  echo
done
