#!/bin/sh
# tools/test.sh - the quick start's second command: install, build, and run
# the whole suite three ways: a plain debug build, under ASan+UBSan, and the
# bridge's suite under TSan. Exits non-zero if anything fails.
set -eu
cd "$(dirname "$0")/.."
tools/setup.sh

run() {
	name=$1
	shift
	echo "== $name" >&2
	meson test -C "$@" --print-errorlogs --num-processes 2
}

tools/build.sh build
run "debug build" build

tools/build.sh build-asan -Db_sanitize=address,undefined -Db_lundef=false
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	run "ASan+UBSan" build-asan

if grep -q "suite : 'bridge'" tests/bridge/meson.build 2>/dev/null; then
	tools/build.sh build-tsan -Db_sanitize=thread -Db_lundef=false
	TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
		run "TSan (bridge)" build-tsan --suite bridge
fi
echo "== all suites passed" >&2
