# contrib: quick start, packaging helpers.
EXTRA_DIST += contrib/quickstart.sh
