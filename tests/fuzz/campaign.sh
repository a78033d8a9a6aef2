#!/bin/sh
# tests/fuzz/campaign.sh: run every libFuzzer target of a fuzzing build for
# a fixed time and print one report line per target.
#
# Usage: tests/fuzz/campaign.sh BUILD_DIR OUT_DIR [SECONDS [JOBS [TARGET...]]]
#   BUILD_DIR  a tree configured with CC=clang --enable-fuzzing (targets in
#              BUILD_DIR/tests/fuzz/*_fuzzer)
#   OUT_DIR    working corpora (OUT_DIR/corpus/NAME, seeded from the
#              committed tests/fuzz/corpus/NAME, which is never written),
#              crash artifacts (OUT_DIR/artifacts/NAME-*), logs
#              (OUT_DIR/logs/NAME.log) and the report (OUT_DIR/report.md)
#   SECONDS    run time per target (default 600)
#   JOBS       targets run at the same time (default 1)
#   TARGET     names such as lsm_wal (default: every target built)
#
# A target's line says: executions, executions per second, corpus size at
# the start and end, coverage (libFuzzer's cov: at the end), peak RSS and
# the number of crash/leak/timeout/oom artifacts ("crashes") and of slow
# units (inputs that took over a second once: on a loaded machine usually
# the load; re-run them alone). The exit status is 1 if any target left a
# crash/leak/timeout/oom artifact or did not run. Interesting new inputs stay
# in OUT_DIR/corpus; commit the small ones that add coverage by hand.
set -u
if [ $# -lt 2 ]; then
	sed -n '4,22p' "$0" | sed 's/^# \{0,1\}//'
	exit 2
fi
build=$1
out=$2
secs=${3:-600}
jobs=${4:-1}
shift 2
[ $# -gt 0 ] && shift
[ $# -gt 0 ] && shift
src=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out/corpus" "$out/artifacts" "$out/logs" || exit 2

if [ $# -gt 0 ]; then
	names="$*"
else
	names=$(cd "$build/tests/fuzz" && ls -- *_fuzzer 2>/dev/null | sed 's/_fuzzer$//')
fi
[ -n "$names" ] || { echo "campaign: no fuzz targets in $build/tests/fuzz" >&2; exit 2; }

run_one() {
	n=$1
	bin="$build/tests/fuzz/${n}_fuzzer"
	log="$out/logs/$n.log"
	mkdir -p "$out/corpus/$n"
	if [ -d "$src/corpus/$n" ]; then
		cp -n "$src/corpus/$n"/* "$out/corpus/$n/" 2>/dev/null
	fi
	start_files=$(ls "$out/corpus/$n" | wc -l)
	"$bin" -max_total_time="$secs" -timeout=25 -rss_limit_mb=2048 \
		-print_final_stats=1 -artifact_prefix="$out/artifacts/$n-" \
		"$out/corpus/$n" >"$log" 2>&1
	rc=$?
	end_files=$(ls "$out/corpus/$n" | wc -l)
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
	eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
	rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -1)
	cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | sed 's/cov: //')
	arts=$(ls "$out/artifacts" | grep -c -E "^$n-(crash|leak|timeout|oom)-")
	slow=$(ls "$out/artifacts" | grep -c "^$n-slow-unit-")
	printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$n" "${execs:-?}" \
		"${eps:-?}" "$start_files" "$end_files" "${cov:-?}" "${rss:-?}" "$arts" "$slow" \
		"$rc" >"$out/logs/$n.line"
}

echo "campaign: $(echo $names | wc -w) targets, ${secs} s each, $jobs at a time, $(date -u '+%Y-%m-%d %H:%M UTC')" >&2
running=0
for n in $names; do
	run_one "$n" &
	running=$((running + 1))
	if [ "$running" -ge "$jobs" ]; then
		wait
		running=0
	fi
done
wait

{
	echo "Fuzzing campaign: ${secs} s per target, $jobs at a time, finished $(date -u '+%Y-%m-%d %H:%M UTC'), host load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo
	echo '| target | executions | exec/s | corpus start | corpus end | coverage | peak RSS MiB | crashes | slow units | exit |'
	echo '|---|---|---|---|---|---|---|---|---|---|'
	for n in $names; do
		cat "$out/logs/$n.line" 2>/dev/null || echo "| $n | did not run | | | | | | | | |"
	done
} >"$out/report.md"
cat "$out/report.md"
bad=0
for n in $names; do
	[ -f "$out/logs/$n.line" ] || bad=1
done
ls "$out/artifacts" | grep -q -E -- "-(crash|leak|timeout|oom)-" && bad=1
exit $bad
