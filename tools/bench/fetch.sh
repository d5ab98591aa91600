#!/usr/bin/env bash
# tools/bench/fetch.sh - the fetch tool against wrk and curl, on one local
# nginx (1 worker, access log off), in one run:
#
#   (a) load: `fetch --bench -c64` against `wrk -t1 -c64`, keep-alive GETs
#       of /small.txt (100 bytes) for SECS seconds: requests/s and client
#       CPU per request;
#   (b) download: `fetch -o /dev/null` against `curl -o /dev/null` of a
#       1 GiB file (128 MiB under --quick; sparse, read once untimed
#       first to fill the page cache), over plain HTTP and over TLS 1.2
#       (ECDHE-ECDSA-AES128-GCM-SHA256, a P-256 certificate made here):
#       bytes/s and client CPU s per GiB;
#   (c) cold start: one small GET per process, fetch against curl, COLD
#       runs each, alternating: whole-process wall time and CPU (median).
#
# CPU is always the client process's user+sys from wait4 (rusage of the
# child, so start-up, dynamic linking and exit are counted). Rounds of (a)
# and (b) alternate the order (fetch first, then curl/wrk first).
#
# The fetch binary: $FETCH_BIN, else <release build>/tools/fetch/fetch.
# The --bench mode: $FETCH_BENCH_BIN --bench if set (a development build
# of fetch_bench_main alone), else the fetch binary's own --bench.
#
# Last line: RESULT bench_cpu_vs_wrk=<fetch/wrk CPU per request>
#   dl_vs_curl=<fetch/curl bytes/s> tls_dl_vs_curl=<same over TLS>
#   cold_cpu_vs_curl=<fetch/curl CPU of one cold GET>
set -euo pipefail
. "$(dirname "$0")/lib.sh"

FETCH=${FETCH_BIN:-$BENCH_BUILD/tools/fetch/fetch}
[ -x "$FETCH" ] || bench_die "missing $FETCH (set FETCH_BIN, or build" \
	"tools/fetch in $BENCH_BUILD)"
LOADER=("${FETCH_BENCH_BIN:-$FETCH}" --bench)
for p in wrk curl openssl; do
	command -v "$p" >/dev/null || bench_die "$p not installed (tools/setup.sh)"
done

ROUNDS=$(bench_reps 5 2)
SECS=$(bench_reps 4 2)
BIG=$(bench_reps $((1 << 30)) $((128 << 20)))
COLD=$(bench_reps 200 40)
CONNS=64
CIPHER=ECDHE-ECDSA-AES128-GCM-SHA256

CERTS=$(mktemp -d "${TMPDIR:-/tmp}/ferry-bench-fetch-XXXXXX")
bench_on_exit "rm -rf '$CERTS'"
bench_p256_certs "$CERTS"
CA=$CERTS/ca.pem

bench_nginx_start --workers 1 --no-access-log --big "$BIG"
PLAIN=http://127.0.0.1:$NGINX_PORT
bench_peer_start TLS python3 "$BENCH_ROOT/tests/servers/nginx.py" \
	--workers 1 --no-access-log --big "$BIG" \
	--tls "$CERTS/leaf.pem" "$CERTS/leaf.key" ||
	bench_die "cannot start the TLS nginx"
TLSURL=https://127.0.0.1:$TLS_PORT
bench_log "nginx on $NGINX_PORT (http) and $TLS_PORT (https); $ROUNDS" \
	"rounds of ${SECS}s, big file $BIG bytes, $COLD cold runs"
bench_log "fetch: $FETCH; --bench: ${LOADER[*]}"

declare -A RATE CPU

# record KEY RATE CPU
record() {
	RATE[$1]="${RATE[$1]:-} $2"
	CPU[$1]="${CPU[$1]:-} $3"
}

# per_req N WALL USER SYS -> "rps cpu_us_per_request"
per_req() {
	awk -v n="$1" -v w="$2" -v u="$3" -v s="$4" \
		'BEGIN { printf "%.0f %.2f", n / w, (u + s) * 1e6 / n }'
}

# per_gib BYTES WALL USER SYS -> "bytes_per_s cpu_s_per_gib"
per_gib() {
	awk -v b="$1" -v w="$2" -v u="$3" -v s="$4" \
		'BEGIN { printf "%.0f %.3f", b / w, (u + s) * 1073741824 / b }'
}

load_wrk() {
	local out t n wall user sys
	out=$(mktemp)
	bench_time t wrk -t1 -c"$CONNS" -d"${SECS}s" "$PLAIN/small.txt" >"$out"
	n=$(awk '/requests in/ { print $1 }' "$out")
	grep -q "Non-2xx\|Socket errors" "$out" && bench_die "wrk: $(cat "$out")"
	rm -f "$out"
	read -r wall user sys <<<"$t"
	# shellcheck disable=SC2046
	record load.wrk $(per_req "$n" "$wall" "$user" "$sys")
}

load_fetch() {
	local out t n wall user sys
	out=$(mktemp)
	bench_time t "${LOADER[@]}" -c $CONNS -d "$SECS" --json-stats \
		"$PLAIN/small.txt" >"$out" || bench_die "fetch --bench: $(cat "$out")"
	n=$(sed 's/.*"requests":\([0-9]*\).*/\1/' "$out")
	grep -q '"errors":{"connect":0,"read":0,"timeout":0,"status":0' "$out" ||
		bench_die "fetch --bench had errors: $(cat "$out")"
	rm -f "$out"
	read -r wall user sys <<<"$t"
	# shellcheck disable=SC2046
	record load.fetch $(per_req "$n" "$wall" "$user" "$sys")
}

# dl KEY PROGRAM ARGS... URL: one download to /dev/null; -w reports the
# size, which must be the whole file.
dl() {
	local key=$1 out t bytes wall user sys
	shift
	out=$(mktemp)
	bench_time t "$@" -s -S -o /dev/null -w '%{size_download}' >"$out" ||
		bench_die "$key: $* failed"
	bytes=$(cat "$out")
	rm -f "$out"
	[ "$bytes" = "$BIG" ] || bench_die "$key: got '$bytes' of $BIG bytes"
	read -r wall user sys <<<"$t"
	# shellcheck disable=SC2046
	record "$key" $(per_gib "$bytes" "$wall" "$user" "$sys")
}

run_fetch_all() {
	load_fetch
	dl dl.fetch "$FETCH" "$PLAIN/big.bin"
	dl tls.fetch "$FETCH" --cacert "$CA" "$TLSURL/big.bin"
}
run_other_all() {
	load_wrk
	dl dl.curl curl -q "$PLAIN/big.bin"
	dl tls.curl curl -q --tlsv1.2 --tls-max 1.2 --ciphers "$CIPHER" \
		--cacert "$CA" "$TLSURL/big.bin"
}

# Sparse files: the first read fills the page cache with zero pages and
# is several times slower; do it untimed.
cat "$NGINX_DIR/www/big.bin" "$TLS_DIR/www/big.bin" >/dev/null

bench_rounds "$ROUNDS" run_fetch_all run_other_all

# (c) cold GETs: one python process spawns the runs (alternating fetch and
# curl) and measures each child alone: wall from spawn to reaped, CPU from
# wait4. Prints "fetch|curl wall-median min max cpu-median min max" (ms).
COLD_OUT=$(python3 - "$COLD" "$FETCH" "$PLAIN/small.txt" <<'EOF'
import os, statistics, sys, time
n, fetch, url = int(sys.argv[1]), sys.argv[2], sys.argv[3]
cmds = {"fetch": [fetch, "-s", "-o", "/dev/null", url],
        "curl": ["curl", "-q", "-s", "-o", "/dev/null", url]}
res = {k: ([], []) for k in cmds}
devnull = os.open(os.devnull, os.O_RDWR)
for i in range(n):
    order = ("fetch", "curl") if i % 2 == 0 else ("curl", "fetch")
    for k in order:
        t0 = time.monotonic()
        pid = os.posix_spawn(cmds[k][0] if "/" in cmds[k][0] else
                             "/usr/bin/" + cmds[k][0], cmds[k], os.environ,
                             file_actions=[(os.POSIX_SPAWN_DUP2, devnull, 0),
                                           (os.POSIX_SPAWN_DUP2, devnull, 1)])
        _, status, ru = os.wait4(pid, 0)
        wall = time.monotonic() - t0
        if os.waitstatus_to_exitcode(status) != 0:
            sys.exit("%s exited %d" % (k, os.waitstatus_to_exitcode(status)))
        res[k][0].append(wall * 1e3)
        res[k][1].append((ru.ru_utime + ru.ru_stime) * 1e3)
for k, (w, c) in res.items():
    print(k, "%.3f %.3f %.3f %.3f %.3f %.3f" % (
        statistics.median(w), min(w), max(w),
        statistics.median(c), min(c), max(c)))
EOF
) || bench_die "cold runs failed"
read -r _ FW FWMIN FWMAX FC FCMIN FCMAX <<<"$(grep '^fetch' <<<"$COLD_OUT")"
read -r _ CW CWMIN CWMAX CC CCMIN CCMAX <<<"$(grep '^curl' <<<"$COLD_OUT")"

# shellcheck disable=SC2086  # $1 is a list of numbers
med() { bench_median $1; }
row() {
	# shellcheck disable=SC2086
	printf "%-16s %-44s %-40s\n" "$1" "$(bench_stats ${RATE[$1]})" \
		"$(bench_stats ${CPU[$1]})"
}

echo
echo "fetch against wrk and curl, nginx 1 worker on loopback"
echo "median (min-max) over $ROUNDS alternating rounds"
echo
printf "%-16s %-44s %-40s\n" "GET 100 B, $CONNS conns" "requests/s" "client CPU us/request"
row load.fetch
row load.wrk
echo
printf "%-16s %-44s %-40s\n" "download $BIG B" "bytes/s" "client CPU s/GiB"
row dl.fetch
row dl.curl
row tls.fetch
row tls.curl
echo
echo "cold GET of 100 B, one process each, median (min-max) of $COLD runs"
printf "%-16s %-30s %s\n" "" "wall ms" "CPU ms"
printf "%-16s %-30s %s\n" fetch "$FW ($FWMIN-$FWMAX)" "$FC ($FCMIN-$FCMAX)"
printf "%-16s %-30s %s\n" curl "$CW ($CWMIN-$CWMAX)" "$CC ($CCMIN-$CCMAX)"
echo

awk -v fb="$(med "${CPU[load.fetch]}")" -v wb="$(med "${CPU[load.wrk]}")" \
    -v fd="$(med "${RATE[dl.fetch]}")" -v cd="$(med "${RATE[dl.curl]}")" \
    -v ft="$(med "${RATE[tls.fetch]}")" -v ct="$(med "${RATE[tls.curl]}")" \
    -v fc="$FC" -v cc="$CC" 'BEGIN {
	printf "RESULT bench_cpu_vs_wrk=%.2f dl_vs_curl=%.2f tls_dl_vs_curl=%.2f cold_cpu_vs_curl=%.2f\n",
	       fb / wb, fd / cd, ft / ct, fc / cc }'
