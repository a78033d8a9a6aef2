# src/node: build fragment (see Makefile.am).
