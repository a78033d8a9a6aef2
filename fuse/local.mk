# fuse: quorumfs, the mount daemon (see docs/filesystem.md).
#
# fuse/libqfs.a is the filesystem model (objects, conflicts, inode table,
# options, and the filesystem operations over the client API); quorumfs is
# the FUSE face on top of it.
noinst_LIBRARIES += fuse/libqfs.a
fuse_libqfs_a_SOURCES = \
	fuse/qfs_format.h \
	fuse/qfs_obj.c fuse/qfs_obj.h \
	fuse/qfs_conflict.c fuse/qfs_conflict.h \
	fuse/qfs_inode.c fuse/qfs_inode.h \
	fuse/qfs_opts.c fuse/qfs_opts.h \
	fuse/qfs_sibs.c fuse/qfs_sibs.h \
	fuse/qfs_gc.c fuse/qfs_gc.h

# unit tests
QFS_TESTS = \
	tests/unit/test_qfs_obj \
	tests/unit/test_qfs_conflict \
	tests/unit/test_qfs_inode \
	tests/unit/test_qfs_opts \
	tests/unit/test_qfs_fs \
	tests/unit/test_qfs_gc
check_PROGRAMS += $(QFS_TESTS)
TESTS += $(QFS_TESTS)
QFS_TEST_LDADD = $(QTEST_LDADD) fuse/libqfs.a src/util/libqutil.a $(QUORUM_LIBS_EXT)
tests_unit_test_qfs_obj_LDADD = $(QFS_TEST_LDADD)
tests_unit_test_qfs_conflict_LDADD = $(QFS_TEST_LDADD)
tests_unit_test_qfs_inode_LDADD = $(QFS_TEST_LDADD)
tests_unit_test_qfs_opts_LDADD = $(QFS_TEST_LDADD)
tests_unit_test_qfs_gc_LDADD = $(QTEST_LDADD) fuse/libqfs.a $(QNODE_LDADD)
# the filesystem operations over a real embedded single-node store
tests_unit_test_qfs_fs_LDADD = $(QTEST_LDADD) fuse/libqfs.a $(QNODE_LDADD)

# fuzz: the object decoder and the conflict-name parser
FUZZ_TARGETS += tests/fuzz/qfs_obj_fuzzer tests/fuzz/qfs_conflict_fuzzer
check_PROGRAMS += tests/fuzz/qfs_obj_fuzzer tests/fuzz/qfs_conflict_fuzzer
tests_fuzz_qfs_obj_fuzzer_SOURCES = tests/fuzz/qfs_obj_fuzzer.c $(FUZZ_MAIN)
tests_fuzz_qfs_obj_fuzzer_LDADD = fuse/libqfs.a src/util/libqutil.a $(QUORUM_LIBS_EXT)
tests_fuzz_qfs_obj_fuzzer_LDFLAGS = $(FUZZ_LINK)
tests_fuzz_qfs_conflict_fuzzer_SOURCES = tests/fuzz/qfs_conflict_fuzzer.c $(FUZZ_MAIN)
tests_fuzz_qfs_conflict_fuzzer_LDADD = fuse/libqfs.a src/util/libqutil.a $(QUORUM_LIBS_EXT)
tests_fuzz_qfs_conflict_fuzzer_LDFLAGS = $(FUZZ_LINK)

# the filesystem operations over the client API
fuse_libqfs_a_SOURCES += fuse/qfs_fs.c fuse/qfs_fs.h

# the mount daemon
bin_PROGRAMS += fuse/quorumfs
fuse_quorumfs_SOURCES = fuse/quorumfs.c fuse/qfs_fuse.c fuse/qfs_fuse.h
fuse_quorumfs_CPPFLAGS = $(AM_CPPFLAGS) $(FUSE_CFLAGS)
fuse_quorumfs_LDADD = fuse/libqfs.a $(QNODE_LDADD) $(FUSE_LIBS)

# integration tests (pytest, real mounts; run by tests/integration/run.sh)
EXTRA_DIST += tests/integration/test_fuse_basic.py tests/integration/test_fuse_cluster.py \
	tests/integration/test_fuse_posix.py tests/integration/fsx.py \
	tests/integration/test_fuse_siblings.py

# the fstab helper
sbin_SCRIPTS += contrib/mount.quorumfs
EXTRA_DIST += contrib/mount.quorumfs

# benchmark against bindfs (not part of make check): make bench-fuse
EXTRA_DIST += bench/fuse_bench.py
bench-fuse: fuse/quorumfs
	python3 $(srcdir)/bench/fuse_bench.py --quorumfs $(abs_builddir)/fuse/quorumfs $(QFS_BENCH_ARGS)
.PHONY: bench-fuse

# documentation of the filesystem and its object format
dist_doc_DATA += docs/filesystem.md

# statfs from the cluster and chunk collection: the node messages' codec
# (src/node/node_fs_msg.h) is fuzzed here, with the integration tests
FUZZ_TARGETS += tests/fuzz/node_fs_msg_fuzzer
check_PROGRAMS += tests/fuzz/node_fs_msg_fuzzer
tests_fuzz_node_fs_msg_fuzzer_SOURCES = tests/fuzz/node_fs_msg_fuzzer.c $(FUZZ_MAIN)
tests_fuzz_node_fs_msg_fuzzer_LDADD = $(QNODE_LDADD)
tests_fuzz_node_fs_msg_fuzzer_LDFLAGS = $(FUZZ_LINK)
EXTRA_DIST += tests/integration/test_fuse_statfs.py tests/integration/test_fuse_gc.py
FUZZ_TARGETS += tests/fuzz/qfs_move_fuzzer
check_PROGRAMS += tests/fuzz/qfs_move_fuzzer
tests_fuzz_qfs_move_fuzzer_SOURCES = tests/fuzz/qfs_move_fuzzer.c $(FUZZ_MAIN)
tests_fuzz_qfs_move_fuzzer_LDADD = fuse/libqfs.a src/util/libqutil.a $(QUORUM_LIBS_EXT)
tests_fuzz_qfs_move_fuzzer_LDFLAGS = $(FUZZ_LINK)

# chunk collection and statfs costs (not part of make check): make bench-fuse-gc
EXTRA_DIST += bench/fuse_gc_bench.py
bench-fuse-gc: fuse/quorumfs src/cli/quorumctl
	python3 $(srcdir)/bench/fuse_gc_bench.py --quorumfs $(abs_builddir)/fuse/quorumfs \
		--quorumctl $(abs_builddir)/src/cli/quorumctl $(QFS_GC_BENCH_ARGS)
.PHONY: bench-fuse-gc
