# src/ring: consistent hashing, virtual nodes, preference lists.
noinst_LIBRARIES += src/ring/libqring.a
src_ring_libqring_a_SOURCES = src/ring/ring.c src/ring/ring.h
dist_doc_DATA += docs/ring.md

RING_TESTS = tests/unit/test_ring_place tests/unit/test_ring_arcs
check_PROGRAMS += $(RING_TESTS)
TESTS += $(RING_TESTS)
tests_unit_test_ring_place_LDADD = $(QTEST_LDADD) src/ring/libqring.a src/util/libqutil.a $(QUORUM_LIBS_EXT)
tests_unit_test_ring_arcs_LDADD = $(QTEST_LDADD) src/ring/libqring.a src/util/libqutil.a $(QUORUM_LIBS_EXT)

FUZZ_TARGETS += tests/fuzz/ring_state_fuzzer
check_PROGRAMS += tests/fuzz/ring_state_fuzzer
tests_fuzz_ring_state_fuzzer_SOURCES = tests/fuzz/ring_state_fuzzer.c $(FUZZ_MAIN)
tests_fuzz_ring_state_fuzzer_LDADD = src/ring/libqring.a src/util/libqutil.a $(QUORUM_LIBS_EXT)
tests_fuzz_ring_state_fuzzer_LDFLAGS = $(FUZZ_LINK)
