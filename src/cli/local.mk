# src/cli: quorumctl, the command-line client and admin tool.
bin_PROGRAMS += src/cli/quorumctl
src_cli_quorumctl_SOURCES = src/cli/quorumctl.c src/cli/cli_bench.c src/cli/cli.h
src_cli_quorumctl_SOURCES += src/cli/cli_fs.c src/cli/cli_admin.c
src_cli_quorumctl_SOURCES += src/cli/cli_repair.c
src_cli_quorumctl_SOURCES += src/cli/cli_secret.c src/cli/cli_ring.c
src_cli_quorumctl_LDADD = fuse/libqfs.a src/node/libqnode.a src/client/libqclient.a src/cluster/libqcluster.a src/aae/libqaae.a \
	src/handoff/libqhandoff.a \
	src/net/libqnet.a src/ring/libqring.a src/object/libqobject.a \
	src/util/libqutil.a $(QUORUM_LIBS_EXT)

# the cluster benchmark (3 quorumd vs redis-server vs etcd; see docs/cluster.md)
EXTRA_DIST += bench/cluster_bench.sh
