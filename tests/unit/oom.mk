# tests/unit/oom.mk: failed allocations at the Nth call (docs/reliability.md,
# "Error injection"). These programs link the allocation hook of
# tests/unit/qalloc_fail.h with the linker's --wrap, so the allocations made
# inside the static module libraries go through it too.
QALLOC_WRAP_FLAGS = -Wl,--wrap=malloc -Wl,--wrap=calloc -Wl,--wrap=realloc \
	-Wl,--wrap=strdup -Wl,--wrap=strndup
QALLOC_HOOK_SRCS = tests/unit/qalloc_fail.c tests/unit/qalloc_fail.h

OOM_TESTS = tests/unit/test_lsm_oom tests/unit/test_codec_oom
check_PROGRAMS += $(OOM_TESTS)
TESTS += $(OOM_TESTS)
tests_unit_test_lsm_oom_SOURCES = tests/unit/test_lsm_oom.c $(QALLOC_HOOK_SRCS)
tests_unit_test_lsm_oom_LDADD = $(QTEST_LDADD) $(LSM_LDADD)
tests_unit_test_lsm_oom_LDFLAGS = $(QALLOC_WRAP_FLAGS)
tests_unit_test_codec_oom_SOURCES = tests/unit/test_codec_oom.c $(QALLOC_HOOK_SRCS)
tests_unit_test_codec_oom_LDADD = $(QTEST_LDADD) fuse/libqfs.a $(QNODE_LDADD)
tests_unit_test_codec_oom_LDFLAGS = $(QALLOC_WRAP_FLAGS)

# node-level error injection (real processes): a full tmpfs, EIO through
# the QFS_FAULT_CONTROL test facility of src/node/node_fault.h
EXTRA_DIST += tests/integration/test_node_faults.py
