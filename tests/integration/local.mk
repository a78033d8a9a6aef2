# tests/integration: pytest suites that start real processes and mounts.
TESTS += tests/integration/run.sh
EXTRA_DIST += tests/integration/run.sh tests/integration/conftest.py \
	tests/integration/test_harness.py
CLEANFILES += tests/integration/results.xml
clean-local: clean-integration
clean-integration:
	-rm -rf tests/integration/tmp
.PHONY: clean-integration
