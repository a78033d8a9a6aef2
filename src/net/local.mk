# src/net: build fragment (see Makefile.am).
# Framing and message codec (pure), libuv transport, blocking client.
noinst_LIBRARIES += src/net/libqnet.a
src_net_libqnet_a_SOURCES = \
	src/net/net_proto.h src/net/net_internal.h \
	src/net/net_frame.c src/net/net_frame.h \
	src/net/net_msg.c src/net/net_msg.h \
	src/net/net_addr.c src/net/net_addr.h \
	src/net/net_loop.c src/net/net_loop.h \
	src/net/net_server.c src/net/net_server.h \
	src/net/net_pool.c src/net/net_pool.h \
	src/net/net_sync.c src/net/net_sync.h \
	src/net/net_auth.c src/net/net_auth.h \
	src/net/net_http.c src/net/net_http.h

dist_doc_DATA += docs/protocol.md

# unit tests
NET_TESTS = \
	tests/unit/test_net_codec \
	tests/unit/test_net_transport \
	tests/unit/test_net_auth
check_PROGRAMS += $(NET_TESTS)
TESTS += $(NET_TESTS)
tests_unit_test_net_codec_LDADD = $(QTEST_LDADD) src/net/libqnet.a src/util/libqutil.a $(QUORUM_LIBS_EXT)
tests_unit_test_net_transport_LDADD = $(QTEST_LDADD) src/net/libqnet.a src/util/libqutil.a $(QUORUM_LIBS_EXT)
tests_unit_test_net_auth_LDADD = $(QTEST_LDADD) src/net/libqnet.a src/util/libqutil.a $(QUORUM_LIBS_EXT)

# fuzz targets: the frame decoder, and the message decoders (first byte
# selects the type)
FUZZ_TARGETS += tests/fuzz/net_frame_fuzzer tests/fuzz/net_msg_fuzzer
check_PROGRAMS += tests/fuzz/net_frame_fuzzer tests/fuzz/net_msg_fuzzer
tests_fuzz_net_frame_fuzzer_SOURCES = tests/fuzz/net_frame_fuzzer.c $(FUZZ_MAIN)
tests_fuzz_net_frame_fuzzer_LDADD = src/net/libqnet.a src/util/libqutil.a $(QUORUM_LIBS_EXT)
tests_fuzz_net_frame_fuzzer_LDFLAGS = $(FUZZ_LINK)
tests_fuzz_net_msg_fuzzer_SOURCES = tests/fuzz/net_msg_fuzzer.c $(FUZZ_MAIN)
tests_fuzz_net_msg_fuzzer_LDADD = src/net/libqnet.a src/util/libqutil.a $(QUORUM_LIBS_EXT)
tests_fuzz_net_msg_fuzzer_LDFLAGS = $(FUZZ_LINK)


# the cluster-secret handshake payloads and the metrics endpoint's HTTP
# request parser (net_auth.h, net_http.h)
FUZZ_TARGETS += tests/fuzz/net_auth_fuzzer tests/fuzz/net_http_fuzzer
check_PROGRAMS += tests/fuzz/net_auth_fuzzer tests/fuzz/net_http_fuzzer
tests_fuzz_net_auth_fuzzer_SOURCES = tests/fuzz/net_auth_fuzzer.c $(FUZZ_MAIN)
tests_fuzz_net_auth_fuzzer_LDADD = src/net/libqnet.a src/util/libqutil.a $(QUORUM_LIBS_EXT)
tests_fuzz_net_auth_fuzzer_LDFLAGS = $(FUZZ_LINK)
tests_fuzz_net_http_fuzzer_SOURCES = tests/fuzz/net_http_fuzzer.c $(FUZZ_MAIN)
tests_fuzz_net_http_fuzzer_LDADD = src/net/libqnet.a src/util/libqutil.a $(QUORUM_LIBS_EXT)
tests_fuzz_net_http_fuzzer_LDFLAGS = $(FUZZ_LINK)

# integration tests of the cluster secret, metrics and ring (run.sh)
EXTRA_DIST += tests/integration/test_security.py tests/integration/test_metrics.py
dist_doc_DATA += docs/security.md
