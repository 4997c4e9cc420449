#!/usr/bin/env bash
# Attach benchmark: how long `heapscope attach` takes and holds a thread in a process with 100
# loaded libraries, and what an allocation costs while attached, against the same process
# before the attach and after the detach, and against `heapscope run` with the same checks
# (--canaries=no --quarantine-mib 0: an attached process keeps its allocator's pointers).
# Median ns per malloc/free pair of the rounds inside each window. Not a test: numbers go to
# docs/perf.md.
#
# usage: bench/run_attach_bench.sh [BUILD_DIR] [ATTACHES]
#   BUILD_DIR  CMake build directory (default: build)
#   ATTACHES   attach/detach cycles for the latency figures (default 20)
set -euo pipefail

build=${1:-build}
attaches=${2:-20}
target="$build/bin/attach_target"
heapscope="$build/bin/heapscope"
[[ -x $target && -x $heapscope ]] || { echo "build first: $target, $heapscope missing" >&2; exit 2; }
scratch=$(mktemp -d)
trap 'kill $(jobs -p) 2> /dev/null || true; rm -rf "$scratch"' EXIT

# 100 small libraries, each with code, data and an allocation of its own.
libraries=()
for i in $(seq 1 100); do
  printf 'extern void* malloc(unsigned long);\nvoid* keep%d;\nvoid* f%d(void) { return keep%d = malloc(%d); }\n' \
    "$i" "$i" "$i" "$i" > "$scratch/lib$i.c"
  cc -shared -fPIC -O1 -o "$scratch/lib$i.so" "$scratch/lib$i.c"
  libraries+=("$scratch/lib$i.so")
done
round=200000

ms() { date +%s%3N; }
# Median of the second column of lines whose first column lies in [FROM, TO] (ms).
median_between() {
  awk -v from="$1" -v to="$2" '$1 >= from && $1 <= to { print $2 }' "$3" | sort -n |
    awk '{ v[NR] = $1 } END { if (NR == 0) print "n/a"; else print v[int((NR + 1) / 2)] }'
}

# --- Latency: attach/detach cycles on an idle-waiting process with 100 libraries.
mkfifo "$scratch/in"
"$target" "$round" "${libraries[@]}" < "$scratch/in" > "$scratch/rounds" 2> "$scratch/target.err" &
pid=$!
exec 3> "$scratch/in"
until grep -q ready "$scratch/rounds" 2> /dev/null; do sleep 0.05; done
modules=$(grep -c ' r-xp .*\.so' "/proc/$pid/maps" || true)
echo "target: pid $pid, $modules executable library mappings"

held=()
ready_ms=()
for i in $(seq 1 "$attaches"); do
  start=$(ms)
  "$heapscope" attach --for 0.3 --log-file /dev/null "$pid" 2> "$scratch/attach.err" &
  attacher=$!
  until grep -q "attached to process" "$scratch/attach.err" 2> /dev/null; do
    sleep 0.005
    kill -0 "$attacher" 2> /dev/null || break
  done
  ready_ms+=($(( $(ms) - start )))
  wait "$attacher" || { echo "attach failed:"; cat "$scratch/attach.err"; exit 1; }
  held+=("$(sed -n 's/.*held \([0-9.]*\) ms.*/\1/p' "$scratch/attach.err")")
done
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
echo "attach: $attaches cycles; thread held median $(median "${held[@]}") ms (max $(median "$(printf '%s\n' "${held[@]}" | sort -n | tail -1)") ms);"
echo "        from starting heapscope to recording, median $(median "${ready_ms[@]}") ms (process start and preflight included)"

# --- Cost per pair: before, during and after one 6-second session.
before_from=$(ms)
sleep 3
before_to=$(ms)
"$heapscope" attach --for 6 --quiet "$pid" 2> "$scratch/attach.err" &
attacher=$!
sleep 1
during_from=$(ms)
sleep 4
during_to=$(ms)
wait "$attacher"
sleep 0.5
after_from=$(ms)
sleep 3
after_to=$(ms)
exec 3>&-
wait "$pid" || true

# --- The same process under heapscope run with the same checks.
mkfifo "$scratch/in2"
"$heapscope" run --quiet --canaries=no --quarantine-mib 0 -- "$target" "$round" "${libraries[@]}" \
  < "$scratch/in2" > "$scratch/run_rounds" 2> /dev/null &
exec 4> "$scratch/in2"
until grep -q ready "$scratch/run_rounds" 2> /dev/null; do sleep 0.05; done
run_from=$(ms)
sleep 5
run_to=$(ms)
exec 4>&-
wait || true

before=$(median_between "$before_from" "$before_to" "$scratch/rounds")
during=$(median_between "$during_from" "$during_to" "$scratch/rounds")
after=$(median_between "$after_from" "$after_to" "$scratch/rounds")
under_run=$(median_between "$run_from" "$run_to" "$scratch/run_rounds")
printf '\nns per malloc/free pair (median of %d-pair rounds, 16-deep stacks)\n' "$round"
printf '  %-44s %8s\n' "native, before the attach" "$before" "attached" "$during" \
  "native, after the detach" "$after" "heapscope run --canaries=no --quarantine-mib 0" "$under_run"
printf '  attached / before: %.2fx   after / before: %.2fx   attached / run: %.2fx\n' \
  "$(echo "$during / $before" | bc -l)" "$(echo "$after / $before" | bc -l)" "$(echo "$during / $under_run" | bc -l)"
