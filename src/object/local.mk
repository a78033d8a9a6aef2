# src/object: build fragment (see Makefile.am).
