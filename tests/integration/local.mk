# tests/integration: pytest suites that start real processes and mounts.
TESTS += tests/integration/run.sh
EXTRA_DIST += tests/integration/run.sh tests/integration/conftest.py \
	tests/integration/test_harness.py
# reliability suite (docs/reliability.md)
EXTRA_DIST += tests/integration/nemesis.py tests/integration/checker.py \
	tests/integration/test_nemesis.py tests/integration/test_node_crash.py \
	tests/integration/test_cluster_corruption.py
dist_doc_DATA += docs/reliability.md
CLEANFILES += tests/integration/results.xml
clean-local: clean-integration
clean-integration:
	-rm -rf tests/integration/tmp
.PHONY: clean-integration
