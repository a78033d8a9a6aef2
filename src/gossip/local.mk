# src/gossip: membership, failure detection, ring-state dissemination.
noinst_LIBRARIES += src/gossip/libqgossip.a
src_gossip_libqgossip_a_SOURCES = \
	src/gossip/gossip_msg.c src/gossip/gossip_msg.h \
	src/gossip/gossip.c src/gossip/gossip.h

GOSSIP_TESTS = \
	tests/unit/test_gossip_msg \
	tests/unit/test_gossip_sim
check_PROGRAMS += $(GOSSIP_TESTS)
TESTS += $(GOSSIP_TESTS)
tests_unit_test_gossip_msg_LDADD = $(QTEST_LDADD) src/gossip/libqgossip.a src/util/libqutil.a $(QUORUM_LIBS_EXT)
tests_unit_test_gossip_sim_LDADD = $(QTEST_LDADD) src/gossip/libqgossip.a src/util/libqutil.a $(QUORUM_LIBS_EXT)

FUZZ_TARGETS += tests/fuzz/gossip_msg_fuzzer
check_PROGRAMS += tests/fuzz/gossip_msg_fuzzer
tests_fuzz_gossip_msg_fuzzer_SOURCES = tests/fuzz/gossip_msg_fuzzer.c $(FUZZ_MAIN)
tests_fuzz_gossip_msg_fuzzer_LDADD = src/gossip/libqgossip.a src/util/libqutil.a $(QUORUM_LIBS_EXT)
tests_fuzz_gossip_msg_fuzzer_LDFLAGS = $(FUZZ_LINK)

dist_doc_DATA += docs/gossip.md
