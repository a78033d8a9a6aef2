# tests/unit: one test program per module, all on the qtest harness.
noinst_LIBRARIES += tests/unit/libqtest.a
tests_unit_libqtest_a_SOURCES = tests/unit/qtest.c tests/unit/qtest.h

QTEST_LDADD = tests/unit/libqtest.a

