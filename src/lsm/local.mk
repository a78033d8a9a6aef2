# src/lsm: the storage engine (see docs/lsm.md).
noinst_LIBRARIES += src/lsm/libqlsm.a
src_lsm_libqlsm_a_SOURCES = \
	src/lsm/lsm.c src/lsm/lsm.h \
	src/lsm/lsm_format.h src/lsm/lsm_internal.h \
	src/lsm/batch.c src/lsm/batch.h \
	src/lsm/wal.c src/lsm/wal.h \
	src/lsm/mem.c src/lsm/mem.h \
	src/lsm/sst.c src/lsm/sst.h \
	src/lsm/mapg.c src/lsm/mapg.h \
	src/lsm/cache.c src/lsm/cache.h \
	src/lsm/ver.c src/lsm/ver.h \
	src/lsm/blob.c src/lsm/blob.h \
	src/lsm/iter.c

LSM_LDADD = src/lsm/libqlsm.a src/util/libqutil.a $(QUORUM_LIBS_EXT)

# unit tests
LSM_TESTS = \
	tests/unit/test_lsm_wal \
	tests/unit/test_lsm_sst \
	tests/unit/test_lsm_db \
	tests/unit/test_lsm_fault \
	tests/unit/test_lsm_blob \
	tests/unit/test_lsm_crash \
	tests/unit/test_lsm_nowait
check_PROGRAMS += $(LSM_TESTS)
TESTS += $(LSM_TESTS)
tests_unit_test_lsm_wal_LDADD = $(QTEST_LDADD) $(LSM_LDADD)
tests_unit_test_lsm_sst_LDADD = $(QTEST_LDADD) $(LSM_LDADD)
tests_unit_test_lsm_db_LDADD = $(QTEST_LDADD) $(LSM_LDADD)
tests_unit_test_lsm_fault_LDADD = $(QTEST_LDADD) $(LSM_LDADD)
tests_unit_test_lsm_crash_LDADD = $(QTEST_LDADD) $(LSM_LDADD)
tests_unit_test_lsm_blob_LDADD = $(QTEST_LDADD) $(LSM_LDADD)
tests_unit_test_lsm_nowait_LDADD = $(QTEST_LDADD) $(LSM_LDADD)
# the crash test's victim: built with the tests, run only by test_lsm_crash
check_PROGRAMS += tests/unit/lsm_crash_writer
tests_unit_lsm_crash_writer_LDADD = $(LSM_LDADD)

# fuzz targets (one per decoder), corpora in tests/fuzz/corpus/lsm_*/
LSM_FUZZERS = tests/fuzz/lsm_wal_fuzzer tests/fuzz/lsm_block_fuzzer \
	tests/fuzz/lsm_table_fuzzer tests/fuzz/lsm_manifest_fuzzer \
	tests/fuzz/lsm_blob_fuzzer
FUZZ_TARGETS += $(LSM_FUZZERS)
check_PROGRAMS += $(LSM_FUZZERS)
tests_fuzz_lsm_wal_fuzzer_SOURCES = tests/fuzz/lsm_wal_fuzzer.c $(FUZZ_MAIN)
tests_fuzz_lsm_wal_fuzzer_LDADD = $(LSM_LDADD)
tests_fuzz_lsm_wal_fuzzer_LDFLAGS = $(FUZZ_LINK)
tests_fuzz_lsm_block_fuzzer_SOURCES = tests/fuzz/lsm_block_fuzzer.c $(FUZZ_MAIN)
tests_fuzz_lsm_block_fuzzer_LDADD = $(LSM_LDADD)
tests_fuzz_lsm_block_fuzzer_LDFLAGS = $(FUZZ_LINK)
tests_fuzz_lsm_table_fuzzer_SOURCES = tests/fuzz/lsm_table_fuzzer.c $(FUZZ_MAIN)
tests_fuzz_lsm_table_fuzzer_LDADD = $(LSM_LDADD)
tests_fuzz_lsm_table_fuzzer_LDFLAGS = $(FUZZ_LINK)
tests_fuzz_lsm_manifest_fuzzer_SOURCES = tests/fuzz/lsm_manifest_fuzzer.c $(FUZZ_MAIN)
tests_fuzz_lsm_manifest_fuzzer_LDADD = $(LSM_LDADD)
tests_fuzz_lsm_manifest_fuzzer_LDFLAGS = $(FUZZ_LINK)
tests_fuzz_lsm_blob_fuzzer_SOURCES = tests/fuzz/lsm_blob_fuzzer.c $(FUZZ_MAIN)
tests_fuzz_lsm_blob_fuzzer_LDADD = $(LSM_LDADD)
tests_fuzz_lsm_blob_fuzzer_LDFLAGS = $(FUZZ_LINK)

# benchmark (not run by make check): ours against LevelDB in one run
noinst_PROGRAMS += bench/lsm_bench
bench_lsm_bench_SOURCES = bench/lsm_bench.c
if HAVE_LEVELDB
bench_lsm_bench_CPPFLAGS = $(AM_CPPFLAGS) -DHAVE_LEVELDB=1
bench_lsm_bench_LDADD = $(LSM_LDADD) -lleveldb
else
bench_lsm_bench_LDADD = $(LSM_LDADD)
endif

dist_doc_DATA += docs/lsm.md
