#!/bin/sh
# tools/demo.sh - the quick start's first command: install, build, and run
# the runtime demo (a loopback echo server and clients on one io_uring loop).
set -eu
cd "$(dirname "$0")/.."
tools/setup.sh
tools/build.sh build
exec build/tools/examples/ferry-demo "$@"
