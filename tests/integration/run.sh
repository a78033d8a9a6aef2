#!/bin/sh
# Runs the pytest integration suite against the build tree. pytest's exit
# code 5 (no tests collected) is a failure here: a suite that ran nothing
# must not pass.
set -u
: "${QFS_SRCDIR:?}" "${QFS_BUILDDIR:?}"
PYTEST=${PYTEST:-pytest-3}
command -v "$PYTEST" >/dev/null 2>&1 || PYTEST="/usr/bin/python3 -m pytest"
export PYTHONDONTWRITEBYTECODE=1
cd "$QFS_SRCDIR/tests/integration" || exit 1
# keep pytest's cache out of the (possibly read-only) source tree
$PYTEST -p no:cacheprovider -q -rfEs --junitxml="$QFS_BUILDDIR/tests/integration/results.xml" \
	--basetemp="$QFS_BUILDDIR/tests/integration/tmp" ${QFS_PYTEST_ARGS:-} .
rc=$?
[ $rc -eq 5 ] && { echo "no integration test ran"; exit 1; }
exit $rc
