# tests/unit: one test program per module, all on the qtest harness.
noinst_LIBRARIES += tests/unit/libqtest.a
tests_unit_libqtest_a_SOURCES = tests/unit/qtest.c tests/unit/qtest.h

QTEST_LDADD = tests/unit/libqtest.a

# power cuts on the node's storage write path (engine with the node's
# options, replica, anti-entropy index, hints) through the fault env
check_PROGRAMS += tests/unit/test_node_dropsync
TESTS += tests/unit/test_node_dropsync
tests_unit_test_node_dropsync_LDADD = $(QTEST_LDADD) src/node/libqnode.a \
	src/client/libqclient.a src/cluster/libqcluster.a src/gossip/libqgossip.a \
	src/handoff/libqhandoff.a src/aae/libqaae.a src/net/libqnet.a src/ring/libqring.a \
	src/object/libqobject.a src/lsm/libqlsm.a src/util/libqutil.a $(QUORUM_LIBS_EXT)
