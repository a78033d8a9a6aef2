# src/node: quorumd (the node daemon) and the node as a library (node.h),
# which the mount daemon embeds.
noinst_LIBRARIES += src/node/libqnode.a
src_node_libqnode_a_SOURCES = \
	src/node/node.c src/node/node.h \
	src/node/node_conf.c src/node/node_conf.h \
	src/node/node_fault.c src/node/node_fault.h \
	src/node/node_gossip.c src/node/node_gossip.h \
	src/node/node_aae.c src/node/node_aae.h \
	src/node/node_handoff.c src/node/node_handoff.h \
	src/node/node_metrics.c src/node/node_metrics.h \
	src/node/node_fs.c src/node/node_fs.h src/node/node_fs_msg.c src/node/node_fs_msg.h

# Everything a program embedding a node links, lowest layer last. The mount
# daemon uses it too: fuse_quorumfs_LDADD = ... $(QNODE_LDADD)
QNODE_LDADD = src/node/libqnode.a src/client/libqclient.a src/cluster/libqcluster.a \
	src/gossip/libqgossip.a src/handoff/libqhandoff.a src/aae/libqaae.a \
	src/net/libqnet.a src/ring/libqring.a src/object/libqobject.a \
	src/lsm/libqlsm.a src/util/libqutil.a $(QUORUM_LIBS_EXT)

bin_PROGRAMS += src/node/quorumd
src_node_quorumd_SOURCES = src/node/quorumd.c
src_node_quorumd_LDADD = $(QNODE_LDADD)

# integration tests of the cluster node (run by tests/integration/run.sh)
EXTRA_DIST += tests/integration/test_cluster_node.py tests/integration/test_cluster_errors.py \
	tests/integration/test_gossip_membership.py tests/integration/test_gossip_handoff.py

# fuzz targets: the context token decoder and the node config loader
FUZZ_TARGETS += tests/fuzz/client_token_fuzzer tests/fuzz/node_conf_fuzzer
check_PROGRAMS += tests/fuzz/client_token_fuzzer tests/fuzz/node_conf_fuzzer
tests_fuzz_client_token_fuzzer_SOURCES = tests/fuzz/client_token_fuzzer.c $(FUZZ_MAIN)
tests_fuzz_client_token_fuzzer_LDADD = src/client/libqclient.a src/object/libqobject.a \
	src/util/libqutil.a $(QUORUM_LIBS_EXT)
tests_fuzz_client_token_fuzzer_LDFLAGS = $(FUZZ_LINK)
tests_fuzz_node_conf_fuzzer_SOURCES = tests/fuzz/node_conf_fuzzer.c $(FUZZ_MAIN)
tests_fuzz_node_conf_fuzzer_LDADD = $(QNODE_LDADD)
tests_fuzz_node_conf_fuzzer_LDFLAGS = $(FUZZ_LINK)

# documentation and the example configuration
dist_doc_DATA += docs/cluster.md docs/config.md
EXTRA_DIST += contrib/quorumd.conf.example

# fuzz target: the status-JSON flattener of the metrics endpoint
FUZZ_TARGETS += tests/fuzz/node_metrics_json_fuzzer
check_PROGRAMS += tests/fuzz/node_metrics_json_fuzzer
tests_fuzz_node_metrics_json_fuzzer_SOURCES = tests/fuzz/node_metrics_json_fuzzer.c $(FUZZ_MAIN)
tests_fuzz_node_metrics_json_fuzzer_LDADD = $(QNODE_LDADD)
tests_fuzz_node_metrics_json_fuzzer_LDFLAGS = $(FUZZ_LINK)
