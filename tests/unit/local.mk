# tests/unit: one test program per module, all on the qtest harness.
noinst_LIBRARIES += tests/unit/libqtest.a
tests_unit_libqtest_a_SOURCES = tests/unit/qtest.c tests/unit/qtest.h

QTEST_LDADD = tests/unit/libqtest.a

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
