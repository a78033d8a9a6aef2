# src/net: build fragment (see Makefile.am).
