# src/cli: build fragment (see Makefile.am).
