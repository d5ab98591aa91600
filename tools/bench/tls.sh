#!/usr/bin/env bash
# tools/bench/tls.sh - HTTPS against one local nginx (1 worker), TLS 1.2,
# ECDHE-ECDSA-AES128-GCM-SHA256, P-256 certificate made here with openssl:
#
#   (a) download of a big file (1 GiB, 128 MiB under --quick; sparse):
#       bytes/s and client CPU s per GiB; ferry's loop-side client (body
#       dropped in on_body) vs curl -o /dev/null, alternating rounds;
#   (b) full handshakes: N sequential GETs of /small.txt, each on a new
#       connection ("Connection: close" from both clients), against a
#       second nginx with session resumption off (ssl_session_cache off,
#       no tickets), so every handshake is a full one for both clients
#       whatever they offer; curl also gets --no-sessionid; all N URLs go
#       to one curl process (a URL glob), so process start-up is amortised
#       the same way as ferry's (one process per N, set-up included);
#       this nginx picks the ECDHE group in the client's order of
#       preference (ssl_prefer_server_ciphers off, nginx's default), so
#       the group is the one each client offers first;
#   (b') the same against a third nginx with an RSA-2048 certificate
#       (issued by an RSA-2048 CA), ECDHE-RSA-AES128-GCM-SHA256;
#   (c) the same against the first nginx (shared session cache): resumed
#       handshakes (BearSSL 0.6 resumes by session ID, not tickets);
#   (d) memory: heap bytes per idle TLS connection, measured by ferry
#       over 100 keep-alive connections (mallinfo2);
#   (e) CPU per EC operation of a handshake (X25519, P-256 mul, mulgen,
#       muladd), ferry's http/tls_ec.c and BearSSL's m31 (not in RESULT).
#
# ferry's client has a verify cache (a leaf certificate verified before
# for the same name skips the chain check: see tls_verify_cache in
# http/ferry/http.h), on by default, so its full handshakes after the
# first check one signature (ServerKeyExchange) instead of two. (b) is
# also run with the cache off ("full ferry nocache") to show both.
#
# Rounds alternate the order (ferry then curl, then curl then ferry), and
# the big file is read once before, untimed, to fill the page cache.
# CPU is the client process's own user+sys (wait4 rusage for curl,
# getrusage in ferry-bench-tls).
#
# Last line: RESULT tls_dl_vs_curl=<ferry/curl bytes per s>
#            tls_hs_cpu_vs_curl=<ferry/curl CPU per full handshake>
#            tls_hs_rsa_cpu_vs_curl=<the same, RSA-2048 server>
#            epoll_tls_dl_vs_uring=<ferry on epoll / on io_uring, bytes per s>
#            epoll_tls_dl_cpu_vs_uring=<the same, CPU per GiB>
#            epoll_tls_hs_cpu_vs_uring=<the same, CPU per full handshake>
#            epoll_tls_dl_vs_curl=<ferry on epoll / curl, bytes per s>
# (ferry_epoll rows: the same client with FERRY_IO_URING=off, run right
# after ferry's in each round.)
set -euo pipefail
. "$(dirname "$0")/lib.sh"

BENCH=$BENCH_BUILD/tools/bench/ferry-bench-tls
[ -x "$BENCH" ] || bench_die "missing $BENCH (tools/bench/run builds it)"
command -v curl >/dev/null || bench_die "curl not installed"
command -v openssl >/dev/null || bench_die "openssl not installed"

ROUNDS=$(bench_reps 5 2)
BIG=$(bench_reps $((1 << 30)) $((128 << 20)))
HS=$(bench_reps 2000 300)
CIPHER=ECDHE-ECDSA-AES128-GCM-SHA256
RSA_CIPHER=ECDHE-RSA-AES128-GCM-SHA256
CURL=(curl -sS --fail --tlsv1.2 --tls-max 1.2)

# The certificates: a CA and a leaf for 127.0.0.1, both P-256; and the
# same in RSA-2048 for the RSA server.
CERTS=$(mktemp -d "${TMPDIR:-/tmp}/ferry-bench-tls-XXXXXX")
bench_on_exit "rm -rf '$CERTS'"
bench_p256_certs "$CERTS"
(
	cd "$CERTS"
	openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 \
		-out rsa_ca.key
	openssl req -x509 -new -key rsa_ca.key -subj /CN=ferry-bench-rsa-ca \
		-days 2 -addext basicConstraints=critical,CA:TRUE \
		-addext keyUsage=critical,keyCertSign -out rsa_ca.pem
	openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 \
		-out rsa.key
	openssl req -new -key rsa.key -subj /CN=127.0.0.1 -out rsa.csr
	openssl x509 -req -in rsa.csr -CA rsa_ca.pem -CAkey rsa_ca.key \
		-CAcreateserial -days 2 -extfile leaf.ext -out rsa.pem
) >/dev/null 2>&1 || bench_die "openssl could not make the certificates"
CA=$CERTS/ca.pem
RSA_CA=$CERTS/rsa_ca.pem

bench_nginx_start --workers 1 --no-access-log --big "$BIG" \
	--tls "$CERTS/leaf.pem" "$CERTS/leaf.key"
RESUME_PORT=$NGINX_PORT
bench_peer_start FULL python3 "$BENCH_ROOT/tests/servers/nginx.py" \
	--workers 1 --no-access-log --tls-no-resume \
	--tls-client-order --tls "$CERTS/leaf.pem" "$CERTS/leaf.key" ||
	bench_die "cannot start the second nginx"
bench_peer_start RSA python3 "$BENCH_ROOT/tests/servers/nginx.py" \
	--workers 1 --no-access-log --tls-no-resume --tls-client-order \
	--tls-cipher "$RSA_CIPHER" --tls "$CERTS/rsa.pem" "$CERTS/rsa.key" ||
	bench_die "cannot start the RSA nginx"
bench_log "nginx: resumption on port $RESUME_PORT, off on $FULL_PORT" \
	"and on $RSA_PORT (RSA);" \
	"$ROUNDS rounds, big file $BIG bytes, $HS handshakes"
bench_log "BearSSL: $("$BENCH" impl)"
EC_OPS=$("$BENCH" ec "$(bench_reps 200 50)")

declare -A RATE CPU

# record KIND NAME RATE CPU
record() {
	RATE[$1.$2]="${RATE[$1.$2]:-} $3"
	CPU[$1.$2]="${CPU[$1.$2]:-} $4"
}

# ferry_run KIND ARGS...: record ferry's rate and CPU for the line it prints.
ferry_run() { ferry_run_as ferry "$@"; }

# ferry_run_as NAME KIND ARGS...: the same, recorded as NAME (ferry_epoll:
# the epoll backend, FERRY_IO_URING=off in the environment).
ferry_run_as() {
	local name=$1 kind=$2 line req err bytes conns wall user sys
	shift 2
	line=$("$BENCH" "$@")
	read -r _ req _ err _ bytes _ conns _ wall _ user _ sys _ <<<"$line"
	[ "$err" = 0 ] || bench_die "ferry: $line"
	if [ "$kind" = dl ]; then
		[ "$bytes" = "$BIG" ] || bench_die "ferry got $bytes of $BIG bytes"
		record dl "$name" "$(awk -v b="$bytes" -v w="$wall" 'BEGIN { printf "%.0f", b / w }')" \
			"$(awk -v b="$bytes" -v u="$user" -v s="$sys" 'BEGIN { printf "%.3f", (u + s) * 1073741824 / b }')"
	else
		[ "$conns" = "$HS" ] || bench_die "ferry opened $conns connections for $HS requests"
		record "$kind" "$name" "$(awk -v n="$req" -v w="$wall" 'BEGIN { printf "%.0f", n / w }')" \
			"$(awk -v n="$req" -v u="$user" -v s="$sys" 'BEGIN { printf "%.1f", (u + s) * 1e6 / n }')"
	fi
}

curl_dl() {
	local t out wall user sys bytes
	out=$(mktemp)
	bench_time t "${CURL[@]}" --ciphers "$CIPHER" --cacert "$CA" -o /dev/null \
		-w '%{size_download}\n' "https://127.0.0.1:$RESUME_PORT/big.bin" >"$out"
	bytes=$(cat "$out")
	rm -f "$out"
	[ "$bytes" = "$BIG" ] || bench_die "curl got $bytes of $BIG bytes"
	read -r wall user sys <<<"$t"
	record dl curl "$(awk -v b="$bytes" -v w="$wall" 'BEGIN { printf "%.0f", b / w }')" \
		"$(awk -v b="$bytes" -v u="$user" -v s="$sys" 'BEGIN { printf "%.3f", (u + s) * 1073741824 / b }')"
}

# curl_hs KIND PORT CIPHER CAFILE [curl options]: HS GETs in one process,
# one connection each; -w counts the connections curl really made.
curl_hs() {
	local kind=$1 port=$2 cipher=$3 ca=$4 t out wall user sys conns
	shift 4
	out=$(mktemp)
	bench_time t "${CURL[@]}" --ciphers "$cipher" --cacert "$ca" "$@" \
		-H 'Connection: close' \
		-o /dev/null -w '%{num_connects}\n' \
		"https://127.0.0.1:$port/small.txt?[1-$HS]" >"$out"
	conns=$(awk '{ n += $1 } END { print n }' "$out")
	rm -f "$out"
	[ "$conns" = "$HS" ] || bench_die "curl made $conns connections for $HS requests"
	read -r wall user sys <<<"$t"
	record "$kind" curl "$(awk -v n="$HS" -v w="$wall" 'BEGIN { printf "%.0f", n / w }')" \
		"$(awk -v n="$HS" -v u="$user" -v s="$sys" 'BEGIN { printf "%.1f", (u + s) * 1e6 / n }')"
}

# The big file is sparse: its first read fills the page cache with zero
# pages and runs several times slower. Do that here, untimed, so the
# first client measured does not pay for it.
cat "$NGINX_DIR/www/big.bin" >/dev/null

run_ferry_all() {
	ferry_run dl dl "https://127.0.0.1:$RESUME_PORT/big.bin" "$CA"
	ferry_run full hs "https://127.0.0.1:$FULL_PORT/small.txt" "$CA" "$HS"
	ferry_run nocache hs "https://127.0.0.1:$FULL_PORT/small.txt" "$CA" "$HS" nocache
	ferry_run rsa hs "https://127.0.0.1:$RSA_PORT/small.txt" "$RSA_CA" "$HS"
	ferry_run resumed hs "https://127.0.0.1:$RESUME_PORT/small.txt" "$CA" "$HS"
	# The same client on the epoll backend (where io_uring is blocked).
	FERRY_IO_URING=off ferry_run_as ferry_epoll dl dl \
		"https://127.0.0.1:$RESUME_PORT/big.bin" "$CA"
	FERRY_IO_URING=off ferry_run_as ferry_epoll full hs \
		"https://127.0.0.1:$FULL_PORT/small.txt" "$CA" "$HS"
}
run_curl_all() {
	curl_dl
	curl_hs full "$FULL_PORT" "$CIPHER" "$CA" --no-sessionid
	curl_hs rsa "$RSA_PORT" "$RSA_CIPHER" "$RSA_CA" --no-sessionid
	curl_hs resumed "$RESUME_PORT" "$CIPHER" "$CA"
}

bench_rounds "$ROUNDS" run_ferry_all run_curl_all

# shellcheck disable=SC2086  # $1 is a list of numbers
med() { bench_median $1; }
row() {
	# shellcheck disable=SC2086
	printf "%-22s %-44s %-44s\n" "$1 $2" "$(bench_stats ${RATE[$1.$2]})" \
		"$(bench_stats ${CPU[$1.$2]})"
}

echo
echo "HTTPS to nginx (1 worker), TLS 1.2 $CIPHER, P-256 cert;" \
	"rsa: $RSA_CIPHER, RSA-2048 cert"
echo "BearSSL in ferry: $("$BENCH" impl)"
echo "EC CPU per operation, ferry's and BearSSL's m31: $EC_OPS"
echo "median (min-max) over $ROUNDS alternating rounds"
echo
printf "%-22s %-44s %-44s\n" "download $BIG B" "bytes/s" "client CPU s/GiB"
row dl ferry
row dl ferry_epoll
row dl curl
echo
printf "%-22s %-44s %-44s\n" "$HS handshakes" "handshakes/s" "client CPU us/handshake"
row full ferry
row full ferry_epoll
row nocache ferry
row full curl
row rsa ferry
row rsa curl
row resumed ferry
row resumed curl
echo

MEM=$("$BENCH" mem "https://127.0.0.1:$RESUME_PORT/small.txt" "$CA" 100) ||
	bench_die "ferry-bench-tls mem failed"
read -r _ MEM_N _ MEM_B <<<"$MEM"
echo "memory per idle TLS connection: $MEM_B bytes of heap" \
	"(mean over $((MEM_N - 1)) connections, mallinfo2)"
awk -v fc="$(med "${CPU[nocache.ferry]}")" -v cc="$(med "${CPU[full.curl]}")" \
	'BEGIN { printf "full handshake CPU with the verify cache off: %.2fx curl\n", fc / cc }'
echo

# shellcheck disable=SC2086
awk -v fr="$(med "${RATE[dl.ferry]}")" -v cr="$(med "${RATE[dl.curl]}")" \
    -v fc="$(med "${CPU[full.ferry]}")" -v cc="$(med "${CPU[full.curl]}")" \
    -v rf="$(med "${CPU[rsa.ferry]}")" -v rc="$(med "${CPU[rsa.curl]}")" \
    -v er="$(med "${RATE[dl.ferry_epoll]}")" \
    -v edc="$(med "${CPU[dl.ferry_epoll]}")" -v fdc="$(med "${CPU[dl.ferry]}")" \
    -v ec="$(med "${CPU[full.ferry_epoll]}")" 'BEGIN {
	printf "RESULT tls_dl_vs_curl=%.2f tls_hs_cpu_vs_curl=%.2f tls_hs_rsa_cpu_vs_curl=%.2f",
	       fr / cr, fc / cc, rf / rc
	printf " epoll_tls_dl_vs_uring=%.2f epoll_tls_dl_cpu_vs_uring=%.2f",
	       er / fr, edc / fdc
	printf " epoll_tls_hs_cpu_vs_uring=%.2f epoll_tls_dl_vs_curl=%.2f\n",
	       ec / fc, er / cr }'
