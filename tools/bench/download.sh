#!/usr/bin/env bash
# tools/bench/download.sh - one big file (256 MiB, 64 MiB under --quick;
# sparse) from local nginx (1 worker), through ferry's blocking API
# with default options, against curl -o /dev/null of the same URL:
#
#   stream       .stream = true, nothing else set: the body is read with
#                ferry_stream_next and dropped;
#   stream256    the same with stream_capacity = 256 (for comparison);
#   whole        whole-body mode (ferry_session_get), body in memory;
#   curl         curl -sS -o /dev/null.
#
# and over https (a second nginx, TLS 1.2 ECDHE-ECDSA-AES128-GCM-SHA256, a
# P-256 certificate made here, as in tls.sh): "tls stream" (defaults
# again) against "tls curl" with the same cipher suite.
#
# The stream rows also list how often the stream paused the connection
# (ferry_stream_stats): a reader that keeps up should make none.
#
# Rounds alternate the order (ferry then curl, then curl then ferry), and
# the file is read once before, untimed, to fill the page cache. Rates are
# bytes/s over the client's wall time; CPU is the client process's own
# user+sys per GiB (getrusage in ferry-bench-download, set-up included;
# wait4 rusage for curl).
#
# Last line: RESULT stream_dl_vs_curl=<ferry stream bytes/s / curl's>
#            stream_cpu_vs_curl=<ferry stream CPU per GiB / curl's>
#            whole_dl_vs_curl=<ferry whole-body bytes/s / curl's>
#            whole_cpu_vs_curl=<ferry whole-body CPU per GiB / curl's>
#            tls_stream_dl_vs_curl=<the same as stream_dl_vs_curl, https>
#            tls_stream_cpu_vs_curl=<the same as stream_cpu_vs_curl, https>
set -euo pipefail
. "$(dirname "$0")/lib.sh"

BENCH=$BENCH_BUILD/tools/bench/ferry-bench-download
[ -x "$BENCH" ] || bench_die "missing $BENCH (tools/bench/run builds it)"
command -v curl >/dev/null || bench_die "curl not installed"
command -v openssl >/dev/null || bench_die "openssl not installed"

ROUNDS=$(bench_reps 7 3)
BIG=$(bench_reps $((256 << 20)) $((64 << 20)))

CIPHER=ECDHE-ECDSA-AES128-GCM-SHA256
CERTS=$(mktemp -d "${TMPDIR:-/tmp}/ferry-bench-dl-XXXXXX")
bench_on_exit "rm -rf '$CERTS'"
bench_p256_certs "$CERTS"

bench_nginx_start --workers 1 --no-access-log --big "$BIG"
URL="http://127.0.0.1:$NGINX_PORT/big.bin"
bench_peer_start TLSNGX python3 "$BENCH_ROOT/tests/servers/nginx.py" \
	--workers 1 --no-access-log --big "$BIG" \
	--tls "$CERTS/leaf.pem" "$CERTS/leaf.key" ||
	bench_die "cannot start the https nginx"
TLS_URL="https://127.0.0.1:$TLSNGX_PORT/big.bin"
bench_log "nginx on ports $NGINX_PORT (http), $TLSNGX_PORT (https);" \
	"$ROUNDS rounds, $BIG bytes"

declare -A RATE CPU PAUSES

# record NAME BYTES WALL USER SYS
record() {
	[ "$2" = "$BIG" ] || bench_die "$1 got $2 of $BIG bytes"
	RATE[$1]="${RATE[$1]:-} $(awk -v b="$2" -v w="$3" 'BEGIN { printf "%.0f", b / w }')"
	CPU[$1]="${CPU[$1]:-} $(awk -v b="$2" -v u="$4" -v s="$5" 'BEGIN { printf "%.3f", (u + s) * 1073741824 / b }')"
}

# ferry_run NAME MODE URL [CAPACITY]: the program reports its own rusage.
ferry_run() {
	local name=$1 line bytes wall user sys
	shift
	line=$(FERRY_BENCH_CA=$CERTS/ca.pem "$BENCH" "$@") ||
		bench_die "ferry $name: $line"
	read -r _ bytes _ _ _ wall _ user _ sys _ _ _ pauses _ <<<"$line"
	record "$name" "$bytes" "$wall" "$user" "$sys"
	PAUSES[$name]="${PAUSES[$name]:-} $pauses"
}

# curl_run NAME URL [curl options]
curl_run() {
	local name=$1 url=$2 t out wall user sys bytes
	shift 2
	out=$(mktemp)
	bench_time t curl -sS --fail "$@" -o /dev/null -w '%{size_download}\n' \
		"$url" >"$out"
	bytes=$(cat "$out")
	rm -f "$out"
	read -r wall user sys <<<"$t"
	record "$name" "$bytes" "$wall" "$user" "$sys"
}

# The sparse files' first read fills the page cache: do it untimed.
cat "$NGINX_DIR/www/big.bin" "$TLSNGX_DIR/www/big.bin" >/dev/null

run_ferry_all() {
	ferry_run stream stream "$URL"
	ferry_run stream256 stream "$URL" 256
	ferry_run whole whole "$URL"
	ferry_run tls_stream stream "$TLS_URL"
}
run_curl_all() {
	curl_run curl "$URL"
	curl_run tls_curl "$TLS_URL" --cacert "$CERTS/ca.pem" --tlsv1.2 \
		--tls-max 1.2 --ciphers "$CIPHER"
}

bench_rounds "$ROUNDS" run_ferry_all run_curl_all

# shellcheck disable=SC2086  # $1 is a list of numbers
med() { bench_median $1; }
row() {
	# shellcheck disable=SC2086
	printf "%-12s %-44s %-44s\n" "$1" "$(bench_stats ${RATE[$1]})" \
		"$(bench_stats ${CPU[$1]})"
}

echo
echo "GET of $BIG B from nginx (1 worker) over loopback, blocking API, default options"
echo "median (min-max) over $ROUNDS alternating rounds"
printf "%-12s %-44s %-44s\n" client "bytes/s" "client CPU s/GiB"
for k in stream stream256 whole curl tls_stream tls_curl; do
	row "$k"
done
echo "(tls_*: https, TLS 1.2 $CIPHER, same file)"
echo "pauses of the stream (connection stopped for a full queue), per run:"
echo "  stream:${PAUSES[stream]}; stream256:${PAUSES[stream256]};" \
	"tls_stream:${PAUSES[tls_stream]}"
echo

# shellcheck disable=SC2086
awk -v sr="$(med "${RATE[stream]}")" -v sc="$(med "${CPU[stream]}")" \
    -v wr="$(med "${RATE[whole]}")" -v wc="$(med "${CPU[whole]}")" \
    -v cr="$(med "${RATE[curl]}")" -v cc="$(med "${CPU[curl]}")" \
    -v tr="$(med "${RATE[tls_stream]}")" -v tc="$(med "${CPU[tls_stream]}")" \
    -v ur="$(med "${RATE[tls_curl]}")" -v uc="$(med "${CPU[tls_curl]}")" 'BEGIN {
	printf "RESULT stream_dl_vs_curl=%.2f stream_cpu_vs_curl=%.2f whole_dl_vs_curl=%.2f whole_cpu_vs_curl=%.2f tls_stream_dl_vs_curl=%.2f tls_stream_cpu_vs_curl=%.2f\n",
	       sr / cr, sc / cc, wr / cr, wc / cc, tr / ur, tc / uc }'
