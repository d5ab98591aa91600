#!/bin/sh
# tools/test.sh - the quick start's second command: install, build, and run
# the whole suite three ways: a plain debug build, under ASan+UBSan, and the
# bridge's and the runtime's suites under TSan (each loop-using suite also
# as <suite>-epoll: the epoll backend). Exits non-zero if anything fails.
set -eu
cd "$(dirname "$0")/.."
tools/setup.sh

run() {
	name=$1
	shift
	echo "== $name" >&2
	meson test -C "$@" --print-errorlogs --num-processes 2
}

# criterion runs each test in a forked child whose sanitizer report does not
# always reach the exit status (LeakSanitizer's never does): read the log.
sanitizer_clean() {
	if grep -nE "ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|WARNING: ThreadSanitizer" \
		"$1/meson-logs/testlog.txt"; then
		echo "== sanitizer reports in $1/meson-logs/testlog.txt" >&2
		exit 1
	fi
}

tools/build.sh build
run "debug build" build

tools/build.sh build-asan -Db_sanitize=address,undefined -Db_lundef=false
# The suppression covers one leak inside criterion's own runner
# (Snaipe/Criterion#113); a leak in ferry or a test is still reported.
LSAN_OPTIONS="suppressions=$PWD/tests/runtime/lsan.supp:fast_unwind_on_malloc=0" \
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	run "ASan+UBSan" build-asan
sanitizer_clean build-asan

if grep -q "suite : 'bridge'" tests/bridge/meson.build 2>/dev/null; then
	tools/build.sh build-tsan -Db_sanitize=thread -Db_lundef=false
	TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
		run "TSan (bridge, runtime)" build-tsan --suite bridge --suite runtime \
			--suite bridge-epoll --suite runtime-epoll
	sanitizer_clean build-tsan
fi
# Fuzz smoke: each libFuzzer target (tests/fuzz) for FERRY_FUZZ_SECONDS
# (default 20; 0 skips) under clang's ASan+UBSan, in build-fuzz; a crash,
# a sanitizer report or a leak fails the run (tools/fuzz exits non-zero).
fuzz_secs=${FERRY_FUZZ_SECONDS:-20}
if [ "$fuzz_secs" -gt 0 ]; then
	tools/fuzz build
	for t in $(tools/fuzz list); do
		log=build-fuzz/fuzz-$t.log
		if ! tools/fuzz "$t" "$fuzz_secs" >"$log" 2>&1; then
			tail -n 60 "$log" >&2
			echo "== fuzz $t failed: see $log and build-fuzz/crash-$t-*" >&2
			exit 1
		fi
		echo "== fuzz $t: $(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$log") runs" >&2
	done
fi
echo "== all suites passed" >&2
