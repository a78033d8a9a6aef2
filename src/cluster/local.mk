# src/cluster: build fragment (see Makefile.am).
