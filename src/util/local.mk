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
