#!/bin/sh
# Replays every committed fuzz corpus through its target (built without
# libFuzzer). Fails if a target crashes, if a target has no corpus, or if
# no target ran at all.
set -u
: "${QFS_SRCDIR:?}" "${QFS_BUILDDIR:?}"
ran=0
fail=0
for t in $QFS_FUZZ_TARGETS; do
	name=$(basename "$t" _fuzzer)
	corpus="$QFS_SRCDIR/tests/fuzz/corpus/$name"
	if [ ! -d "$corpus" ] || [ -z "$(ls -A "$corpus")" ]; then
		echo "FAIL $name: no corpus in $corpus"
		fail=1
		continue
	fi
	if "$QFS_BUILDDIR/$t" "$corpus"; then
		echo "ok $name"
		ran=$((ran + 1))
	else
		echo "FAIL $name"
		fail=1
	fi
done
[ "$ran" -gt 0 ] || { echo "no fuzz target ran"; exit 1; }
exit $fail
