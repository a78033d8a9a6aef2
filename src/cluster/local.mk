# src/cluster: the coordinator (quorum get/put, read repair), the replica
# store of sibling sets, and the membership list.
noinst_LIBRARIES += src/cluster/libqcluster.a
src_cluster_libqcluster_a_SOURCES = \
	src/cluster/coord.c src/cluster/coord.h \
	src/cluster/replica.c src/cluster/replica.h \
	src/cluster/members.c src/cluster/members.h
