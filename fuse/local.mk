# fuse: build fragment (see Makefile.am).
