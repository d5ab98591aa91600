#!/usr/bin/env bash
# tools/bench/http.sh - keep-alive GETs of a 100-byte file from one local
# nginx: ferry's loop-side client (one loop thread, 64 connections) against
# wrk -t1 -c64, alternating rounds in one run; plus the same GETs through
# the blocking API from 16 threads, and RSS per idle pooled connection.
# The loop-side client runs on both runtime backends: io_uring (ferry) and
# epoll (ferry_epoll, FERRY_IO_URING=off), in the same alternation.
#
# CPU per request is the client process's own user+sys (wait4 rusage)
# divided by the requests it completed. Each comparison runs unpinned, and
# pinned with client and nginx on the same CPU (taskset), as DESIGN.md asks.
#
# Last line: RESULT cpu_per_req_vs_wrk=<ferry/wrk> rps_vs_wrk=<ferry/wrk>
#            blocking_vs_async=<blocking rps / async rps>
#            epoll_cpu_vs_uring=<ferry_epoll/ferry CPU per request>
#            epoll_rps_vs_wrk=<ferry_epoll/wrk>
#            epoll_cpu_vs_uring_pinned=<the same, pinned>   (others unpinned)
set -euo pipefail
. "$(dirname "$0")/lib.sh"

BENCH=$BENCH_BUILD/tools/bench/ferry-bench-http
[ -x "$BENCH" ] || bench_die "missing $BENCH (tools/bench/run builds it)"
command -v wrk >/dev/null || bench_die "wrk not installed (apt-get install wrk)"

ROUNDS=$(bench_reps 5 2)
SECS=$(bench_reps 4 2)
CONNS=64
THREADS=16

bench_nginx_start --workers 1 --no-access-log
URL="http://127.0.0.1:$NGINX_PORT/small.txt"
NGINX_MASTER=$(cat "$NGINX_DIR/nginx.pid" 2>/dev/null || true)
bench_log "nginx on port $NGINX_PORT; $ROUNDS rounds of ${SECS}s each"

declare -A RPS CPU

# record NAME REQUESTS WALL USER SYS
record() {
	local rps cpu
	rps=$(awk -v n="$2" -v w="$3" 'BEGIN { printf "%.0f", n / w }')
	cpu=$(awk -v n="$2" -v u="$4" -v s="$5" 'BEGIN { printf "%.2f", (u + s) * 1e6 / n }')
	RPS[$1]="${RPS[$1]:-} $rps"
	CPU[$1]="${CPU[$1]:-} $cpu"
}

# run_wrk NAME [taskset...]
run_wrk() {
	local name=$1 out t n
	shift
	out=$(mktemp)
	bench_time t "$@" wrk -t1 -c$CONNS -d${SECS}s "$URL" >"$out"
	n=$(awk '/requests in/ { print $1 }' "$out")
	rm -f "$out"
	read -r wall user sys <<<"$t"
	record "$name" "$n" "$wall" "$user" "$sys"
}

# run_ferry NAME MODE N [taskset...]: the program reports its own rusage.
run_ferry() {
	local name=$1 mode=$2 n=$3 line
	shift 3
	line=$("$@" "$BENCH" "$mode" "$URL" "$n" "$SECS")
	read -r _ req _ _ _ wall _ user _ sys <<<"$line"
	record "$name" "$req" "$wall" "$user" "$sys"
}

pin=()
if [ -n "$NGINX_MASTER" ] && command -v taskset >/dev/null; then
	pin=(taskset -c 0)
fi

for r in $(seq "$ROUNDS"); do
	bench_log "round $r/$ROUNDS"
	run_wrk wrk
	run_ferry ferry async $CONNS
	run_ferry ferry_epoll async $CONNS env FERRY_IO_URING=off
	run_ferry blocking blocking $THREADS
	if [ ${#pin[@]} -gt 0 ]; then
		# nginx's worker and the client share CPU 0.
		for p in $(pgrep -P "$NGINX_MASTER" nginx || true); do
			taskset -pc 0 "$p" >/dev/null
		done
		run_wrk wrk_pinned "${pin[@]}"
		run_ferry ferry_pinned async $CONNS "${pin[@]}"
		run_ferry ferry_epoll_pinned async $CONNS env FERRY_IO_URING=off "${pin[@]}"
		for p in $(pgrep -P "$NGINX_MASTER" nginx || true); do
			taskset -pc 0-$(($(nproc) - 1)) "$p" >/dev/null
		done
	fi
done

idle=$("$BENCH" idle "$URL" 500)

med() { bench_median $1; }
row() {
	# shellcheck disable=SC2086
	printf "%-16s %-34s %-30s\n" "$1" "$(bench_stats ${RPS[$1]})" "$(bench_stats ${CPU[$1]})"
}

echo
echo "keep-alive GET /small.txt (100 B), nginx 1 worker, $CONNS conns (blocking: $THREADS threads)"
echo "median (min-max) over $ROUNDS alternating rounds of ${SECS}s"
printf "%-16s %-34s %-30s\n" client "requests/s" "client CPU us/request"
for k in wrk ferry ferry_epoll blocking wrk_pinned ferry_pinned ferry_epoll_pinned; do
	[ -n "${RPS[$k]:-}" ] && row "$k"
done
echo "idle pool: $idle"
echo

# shellcheck disable=SC2086
awk -v fc="$(med "${CPU[ferry]}")" -v wc="$(med "${CPU[wrk]}")" \
    -v fr="$(med "${RPS[ferry]}")" -v wr="$(med "${RPS[wrk]}")" \
    -v br="$(med "${RPS[blocking]}")" \
    -v ec="$(med "${CPU[ferry_epoll]}")" -v er="$(med "${RPS[ferry_epoll]}")" \
    -v fcp="$(med "${CPU[ferry_pinned]:-0}")" \
    -v ecp="$(med "${CPU[ferry_epoll_pinned]:-0}")" 'BEGIN {
	printf "RESULT cpu_per_req_vs_wrk=%.2f rps_vs_wrk=%.2f blocking_vs_async=%.2f",
	       fc / wc, fr / wr, br / fr
	printf " epoll_cpu_vs_uring=%.2f epoll_rps_vs_wrk=%.2f", ec / fc, er / wr
	if (fcp > 0)
		printf " epoll_cpu_vs_uring_pinned=%.2f", ecp / fcp
	printf "\n" }'
