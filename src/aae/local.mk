# src/aae: anti-entropy (Merkle trees per key range, tree exchange, rate
# limits, tombstone-reaping bookkeeping). See docs/aae.md.
noinst_LIBRARIES += src/aae/libqaae.a
src_aae_libqaae_a_SOURCES = \
	src/aae/aae_format.h \
	src/aae/aae_tree.c src/aae/aae_tree.h \
	src/aae/aae_msg.c src/aae/aae_msg.h \
	src/aae/aae_exchange.c src/aae/aae_exchange.h \
	src/aae/aae_rate.c src/aae/aae_rate.h \
	src/aae/aae_reap.c src/aae/aae_reap.h \
	src/aae/aae_lsm.c src/aae/aae_lsm.h \
	src/aae/aae_sync.c src/aae/aae_sync.h

AAE_LIBS = src/aae/libqaae.a src/util/libqutil.a $(QUORUM_LIBS_EXT)

# unit tests
AAE_TESTS = \
	tests/unit/test_aae_tree \
	tests/unit/test_aae_msg \
	tests/unit/test_aae_exchange \
	tests/unit/test_aae_rate \
	tests/unit/test_aae_reap \
	tests/unit/test_aae_lsm \
	tests/unit/test_aae_replica \
	tests/unit/test_aae_sync
check_PROGRAMS += $(AAE_TESTS)
TESTS += $(AAE_TESTS)
tests_unit_test_aae_tree_LDADD = $(QTEST_LDADD) $(AAE_LIBS)
tests_unit_test_aae_msg_LDADD = $(QTEST_LDADD) $(AAE_LIBS)
tests_unit_test_aae_exchange_LDADD = $(QTEST_LDADD) $(AAE_LIBS)
tests_unit_test_aae_rate_LDADD = $(QTEST_LDADD) $(AAE_LIBS)
tests_unit_test_aae_reap_LDADD = $(QTEST_LDADD) $(AAE_LIBS)
# aae_lsm.c is the only part that needs the engine, objects and the ring
tests_unit_test_aae_lsm_LDADD = $(QTEST_LDADD) src/aae/libqaae.a src/lsm/libqlsm.a \
	src/object/libqobject.a src/ring/libqring.a src/util/libqutil.a $(QUORUM_LIBS_EXT)

tests_unit_test_aae_sync_LDADD = $(QTEST_LDADD) $(AAE_LIBS)
# the replica write hook (src/cluster/replica.c) feeding trees and index
tests_unit_test_aae_replica_LDADD = $(QTEST_LDADD) src/cluster/libqcluster.a src/aae/libqaae.a \
	src/lsm/libqlsm.a src/object/libqobject.a src/ring/libqring.a src/util/libqutil.a \
	$(QUORUM_LIBS_EXT)

# fuzz targets: the message decoder (and responder), the persisted-tree
# decoder, the exchange consuming hostile responses
FUZZ_TARGETS += tests/fuzz/aae_msg_fuzzer tests/fuzz/aae_tree_fuzzer tests/fuzz/aae_exchange_fuzzer \
	tests/fuzz/aae_sync_fuzzer
check_PROGRAMS += tests/fuzz/aae_msg_fuzzer tests/fuzz/aae_tree_fuzzer tests/fuzz/aae_exchange_fuzzer \
	tests/fuzz/aae_sync_fuzzer
tests_fuzz_aae_sync_fuzzer_SOURCES = tests/fuzz/aae_sync_fuzzer.c $(FUZZ_MAIN)
tests_fuzz_aae_sync_fuzzer_LDADD = $(AAE_LIBS)
tests_fuzz_aae_sync_fuzzer_LDFLAGS = $(FUZZ_LINK)
tests_fuzz_aae_exchange_fuzzer_SOURCES = tests/fuzz/aae_exchange_fuzzer.c $(FUZZ_MAIN)
tests_fuzz_aae_exchange_fuzzer_LDADD = $(AAE_LIBS)
tests_fuzz_aae_exchange_fuzzer_LDFLAGS = $(FUZZ_LINK)
tests_fuzz_aae_msg_fuzzer_SOURCES = tests/fuzz/aae_msg_fuzzer.c $(FUZZ_MAIN)
tests_fuzz_aae_msg_fuzzer_LDADD = $(AAE_LIBS)
tests_fuzz_aae_msg_fuzzer_LDFLAGS = $(FUZZ_LINK)
tests_fuzz_aae_tree_fuzzer_SOURCES = tests/fuzz/aae_tree_fuzzer.c $(FUZZ_MAIN)
tests_fuzz_aae_tree_fuzzer_LDADD = $(AAE_LIBS)
tests_fuzz_aae_tree_fuzzer_LDFLAGS = $(FUZZ_LINK)

dist_doc_DATA += docs/aae.md

# integration tests of anti-entropy in the node (run by tests/integration/run.sh)
EXTRA_DIST += tests/integration/test_aae.py
EXTRA_DIST += bench/aae_bench.py
