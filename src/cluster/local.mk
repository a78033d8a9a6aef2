# src/cluster: the coordinator (quorum get/put, read repair), the replica
# store of sibling sets, and the membership list.
noinst_LIBRARIES += src/cluster/libqcluster.a
src_cluster_libqcluster_a_SOURCES = \
	src/cluster/coord.c src/cluster/coord.h \
	src/cluster/replica.c src/cluster/replica.h \
	src/cluster/members.c src/cluster/members.h

# unit tests
COORD_TESTS = \
	tests/unit/test_coord_replica \
	tests/unit/test_coord_cluster \
	tests/unit/test_coord_jobs \
	tests/unit/test_client_token \
	tests/unit/test_node_conf
check_PROGRAMS += $(COORD_TESTS)
TESTS += $(COORD_TESTS)
tests_unit_test_coord_replica_LDADD = $(QTEST_LDADD) src/cluster/libqcluster.a \
	src/handoff/libqhandoff.a \
	src/object/libqobject.a src/lsm/libqlsm.a src/util/libqutil.a $(QUORUM_LIBS_EXT)
tests_unit_test_coord_cluster_LDADD = $(QTEST_LDADD) $(QNODE_LDADD)
tests_unit_test_coord_jobs_LDADD = $(QTEST_LDADD) $(QNODE_LDADD)
tests_unit_test_client_token_LDADD = $(QTEST_LDADD) src/client/libqclient.a \
	src/object/libqobject.a src/util/libqutil.a $(QUORUM_LIBS_EXT)
tests_unit_test_node_conf_LDADD = $(QTEST_LDADD) $(QNODE_LDADD)
EXTRA_DIST += tests/integration/test_cluster_fallback.py tests/integration/test_cluster_io.py
