# src/object: versioned objects (dotted version vectors, sibling sets).
noinst_LIBRARIES += src/object/libqobject.a
src_object_libqobject_a_SOURCES = src/object/obj.c src/object/obj.h
dist_doc_DATA += docs/objects.md

OBJ_TESTS = tests/unit/test_obj_set tests/unit/test_obj_model
check_PROGRAMS += $(OBJ_TESTS)
TESTS += $(OBJ_TESTS)
tests_unit_test_obj_set_LDADD = $(QTEST_LDADD) src/object/libqobject.a src/util/libqutil.a $(QUORUM_LIBS_EXT)
tests_unit_test_obj_model_LDADD = $(QTEST_LDADD) src/object/libqobject.a src/util/libqutil.a $(QUORUM_LIBS_EXT)

FUZZ_TARGETS += tests/fuzz/obj_set_fuzzer tests/fuzz/obj_ctx_fuzzer
check_PROGRAMS += tests/fuzz/obj_set_fuzzer tests/fuzz/obj_ctx_fuzzer
tests_fuzz_obj_set_fuzzer_SOURCES = tests/fuzz/obj_set_fuzzer.c $(FUZZ_MAIN)
tests_fuzz_obj_set_fuzzer_LDADD = src/object/libqobject.a src/util/libqutil.a $(QUORUM_LIBS_EXT)
tests_fuzz_obj_set_fuzzer_LDFLAGS = $(FUZZ_LINK)
tests_fuzz_obj_ctx_fuzzer_SOURCES = tests/fuzz/obj_ctx_fuzzer.c $(FUZZ_MAIN)
tests_fuzz_obj_ctx_fuzzer_LDADD = src/object/libqobject.a src/util/libqutil.a $(QUORUM_LIBS_EXT)
tests_fuzz_obj_ctx_fuzzer_LDFLAGS = $(FUZZ_LINK)
