# src/util: the bottom layer (errors, buffers, coding, hashing, logging,
# config, time, file-I/O env).
noinst_LIBRARIES += src/util/libqutil.a
src_util_libqutil_a_SOURCES = \
	src/util/qerr.c src/util/qerr.h \
	src/util/buf.c src/util/buf.h \
	src/util/coding.c src/util/coding.h \
	src/util/hash.c src/util/hash.h \
	src/util/log.c src/util/log.h \
	src/util/conf.c src/util/conf.h \
	src/util/qtime.c src/util/qtime.h \
	src/util/env.c src/util/env.h src/util/env_fault.c

# unit tests
UTIL_TESTS = \
	tests/unit/test_util_buf \
	tests/unit/test_util_coding \
	tests/unit/test_util_hash \
	tests/unit/test_util_conf \
	tests/unit/test_util_env \
	tests/unit/test_util_log
check_PROGRAMS += $(UTIL_TESTS)
TESTS += $(UTIL_TESTS)
tests_unit_test_util_buf_LDADD = $(QTEST_LDADD) src/util/libqutil.a $(QUORUM_LIBS_EXT)
tests_unit_test_util_coding_LDADD = $(QTEST_LDADD) src/util/libqutil.a $(QUORUM_LIBS_EXT)
tests_unit_test_util_hash_LDADD = $(QTEST_LDADD) src/util/libqutil.a $(QUORUM_LIBS_EXT)
tests_unit_test_util_conf_LDADD = $(QTEST_LDADD) src/util/libqutil.a $(QUORUM_LIBS_EXT)
tests_unit_test_util_env_LDADD = $(QTEST_LDADD) src/util/libqutil.a $(QUORUM_LIBS_EXT)
tests_unit_test_util_log_LDADD = $(QTEST_LDADD) src/util/libqutil.a $(QUORUM_LIBS_EXT)
