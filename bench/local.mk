# bench: build fragment (see Makefile.am).
