# src/handoff: durable hint store, range-handoff planner, rate limiter.
noinst_LIBRARIES += src/handoff/libqhandoff.a
src_handoff_libqhandoff_a_SOURCES = \
	src/handoff/hint.c src/handoff/hint.h \
	src/handoff/handoff_plan.c src/handoff/handoff.h \
	src/handoff/handoff_rate.c \
	src/handoff/handoff_msg.c src/handoff/handoff_msg.h

HANDOFF_LIBS = src/handoff/libqhandoff.a src/ring/libqring.a src/object/libqobject.a \
	src/lsm/libqlsm.a src/util/libqutil.a $(QUORUM_LIBS_EXT)

HINT_TESTS = \
	tests/unit/test_hint_store \
	tests/unit/test_hint_plan \
	tests/unit/test_handoff_msg
check_PROGRAMS += $(HINT_TESTS)
TESTS += $(HINT_TESTS)
tests_unit_test_hint_store_LDADD = $(QTEST_LDADD) $(HANDOFF_LIBS)
tests_unit_test_hint_plan_LDADD = $(QTEST_LDADD) $(HANDOFF_LIBS)
tests_unit_test_handoff_msg_LDADD = $(QTEST_LDADD) $(HANDOFF_LIBS)

FUZZ_TARGETS += tests/fuzz/hint_record_fuzzer
check_PROGRAMS += tests/fuzz/hint_record_fuzzer
tests_fuzz_hint_record_fuzzer_SOURCES = tests/fuzz/hint_record_fuzzer.c $(FUZZ_MAIN)
tests_fuzz_hint_record_fuzzer_LDADD = $(HANDOFF_LIBS)
tests_fuzz_hint_record_fuzzer_LDFLAGS = $(FUZZ_LINK)

FUZZ_TARGETS += tests/fuzz/handoff_msg_fuzzer
check_PROGRAMS += tests/fuzz/handoff_msg_fuzzer
tests_fuzz_handoff_msg_fuzzer_SOURCES = tests/fuzz/handoff_msg_fuzzer.c $(FUZZ_MAIN)
tests_fuzz_handoff_msg_fuzzer_LDADD = $(HANDOFF_LIBS)
tests_fuzz_handoff_msg_fuzzer_LDFLAGS = $(FUZZ_LINK)

dist_doc_DATA += docs/handoff.md

# integration tests of join/leave with range handoff and of failure modes
EXTRA_DIST += tests/integration/test_join_leave.py tests/integration/test_failure_modes.py
