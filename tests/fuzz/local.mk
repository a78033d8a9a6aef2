# tests/fuzz: one libFuzzer target per decoder. With --enable-fuzzing the
# targets link libFuzzer; otherwise they link replay_main.c, and `make check`
# replays every committed corpus file through them (tests/fuzz/replay.sh).
if ENABLE_FUZZING
FUZZ_MAIN =
FUZZ_LINK = $(FUZZ_LDFLAGS)
else
FUZZ_MAIN = tests/fuzz/replay_main.c
FUZZ_LINK =
endif

FUZZ_TARGETS += tests/fuzz/util_coding_fuzzer tests/fuzz/util_conf_fuzzer
check_PROGRAMS += tests/fuzz/util_coding_fuzzer tests/fuzz/util_conf_fuzzer
tests_fuzz_util_coding_fuzzer_SOURCES = tests/fuzz/util_coding_fuzzer.c $(FUZZ_MAIN)
tests_fuzz_util_coding_fuzzer_LDADD = src/util/libqutil.a $(QUORUM_LIBS_EXT)
tests_fuzz_util_coding_fuzzer_LDFLAGS = $(FUZZ_LINK)
tests_fuzz_util_conf_fuzzer_SOURCES = tests/fuzz/util_conf_fuzzer.c $(FUZZ_MAIN)
tests_fuzz_util_conf_fuzzer_LDADD = src/util/libqutil.a $(QUORUM_LIBS_EXT)
tests_fuzz_util_conf_fuzzer_LDFLAGS = $(FUZZ_LINK)

TESTS += tests/fuzz/replay.sh
EXTRA_DIST += tests/fuzz/replay.sh tests/fuzz/campaign.sh tests/fuzz/replay_main.c tests/fuzz/corpus tests/fuzz/README.md

# Operation-sequence fuzzers: input bytes are a program of operations on a
# real component, checked against a model after every step (not decoders).
OPS_FUZZERS = tests/fuzz/lsm_ops_fuzzer tests/fuzz/obj_ops_fuzzer
FUZZ_TARGETS += $(OPS_FUZZERS)
check_PROGRAMS += $(OPS_FUZZERS)
tests_fuzz_lsm_ops_fuzzer_SOURCES = tests/fuzz/lsm_ops_fuzzer.c $(FUZZ_MAIN)
tests_fuzz_lsm_ops_fuzzer_LDADD = src/lsm/libqlsm.a src/util/libqutil.a $(QUORUM_LIBS_EXT)
tests_fuzz_lsm_ops_fuzzer_LDFLAGS = $(FUZZ_LINK)
tests_fuzz_obj_ops_fuzzer_SOURCES = tests/fuzz/obj_ops_fuzzer.c $(FUZZ_MAIN)
tests_fuzz_obj_ops_fuzzer_LDADD = src/object/libqobject.a src/util/libqutil.a $(QUORUM_LIBS_EXT)
tests_fuzz_obj_ops_fuzzer_LDFLAGS = $(FUZZ_LINK)
