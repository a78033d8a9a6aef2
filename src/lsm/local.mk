# src/lsm: build fragment (see Makefile.am).
