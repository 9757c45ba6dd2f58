#!/bin/sh
# Runs one Python test file of this package with Debian's python3 (the tests are stdlib only).
# Bazel starts tests in the runfiles tree, so $1 (a rootpath) is relative to the working directory.
exec /usr/bin/python3 "$@"
