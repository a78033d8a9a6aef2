# src/ring: build fragment (see Makefile.am).
