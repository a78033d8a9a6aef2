# src/client: the client API (client.h): in-process and network clients.
noinst_LIBRARIES += src/client/libqclient.a
src_client_libqclient_a_SOURCES = \
	src/client/client.c src/client/client.h \
	src/client/client_inproc.c \
	src/client/client_net.c
