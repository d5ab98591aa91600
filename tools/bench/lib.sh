# tools/bench/lib.sh - shell helpers for benchmarks; bash only.
#
#	. "$(dirname "$0")/lib.sh"
#	bench_nginx_start --workers 1
#	bench_time t wrk -t1 -c8 -d5s "http://127.0.0.1:$NGINX_PORT/small.txt"
#	read -r wall user sys <<<"$t"
#	bench_stats 1.2 0.9 1.1      # -> median=1.1 min=0.9 max=1.2 n=3
#
# Sourcing installs an EXIT/INT/TERM trap that stops every peer started
# with these helpers (by the PID we started, nothing else).  Do not set
# your own EXIT trap: register extra cleanup with bench_on_exit.
#
# Peers get PR_SET_PDEATHSIG from their parent, which is this shell: start
# them from the script's own shell, never inside $(...) or a pipeline (that
# subshell would exit at once and take the peer with it).

# For the sourcing script: BENCH_ROOT (source tree), BENCH_BUILD (release
# build dir, where ferry-bench-* programs are), BENCH_QUICK (1 or 0).
# shellcheck disable=SC2034
BENCH_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BENCH_ROOT=${FERRY_SOURCE_ROOT:-$(cd "$BENCH_LIB_DIR/../.." && pwd)}
# shellcheck disable=SC2034
BENCH_BUILD=${FERRY_BUILD_ROOT:-$BENCH_ROOT/build-release}
BENCH_QUICK=${FERRY_BENCH_QUICK:-0}
for __a in "$@"; do [ "$__a" = --quick ] && BENCH_QUICK=1; done
unset __a

bench__pids=()
bench__outs=()
bench__exit_cmds=()

bench_log() { echo "bench: $*" >&2; }
bench_die() { echo "bench: $*" >&2; exit 1; }

# bench_reps FULL QUICK: prints QUICK under --quick, else FULL.
bench_reps() { if [ "$BENCH_QUICK" = 1 ]; then echo "$2"; else echo "$1"; fi; }

# bench_on_exit CMD...: run CMD (one string, eval'ed) when the script exits.
bench_on_exit() { bench__exit_cmds+=("$*"); }

# Stop one peer: SIGTERM, SIGKILL after 5 s, reap.
bench__stop_pid() {
	local pid=$1 i
	kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
	kill -TERM "$pid" 2>/dev/null
	for ((i = 0; i < 500; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.01
	done
	kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	return 0
}

bench__cleanup() {
	local rc=$? i
	trap - EXIT INT TERM
	for ((i = ${#bench__exit_cmds[@]} - 1; i >= 0; i--)); do
		eval "${bench__exit_cmds[i]}" || true
	done
	for pid in "${bench__pids[@]}"; do
		bench__stop_pid "$pid"
	done
	for f in "${bench__outs[@]}"; do
		rm -f "$f"
	done
	exit "$rc"
}
trap bench__cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# bench_peer_start PREFIX CMD...: start a peer that prints
# "READY <port> [<dir>]" and set ${PREFIX}_PID, ${PREFIX}_PORT and
# ${PREFIX}_DIR.  Waits at most 10 s.  Returns 77 if the peer said it
# cannot run here (exit 77), 1 on other failures.
bench_peer_start() {
	local prefix=$1 out pid i tag port dir rc
	shift
	out=$(mktemp "${TMPDIR:-/tmp}/ferry-bench-peer-XXXXXX")
	bench__outs+=("$out")
	"$@" >"$out" </dev/null &
	pid=$!
	bench__pids+=("$pid")
	for ((i = 0; i < 1000; i++)); do
		if read -r tag port dir <"$out" && [ "$tag" = READY ]; then
			printf -v "${prefix}_PID" %s "$pid"
			printf -v "${prefix}_PORT" %s "$port"
			printf -v "${prefix}_DIR" %s "$dir"
			return 0
		fi
		if ! kill -0 "$pid" 2>/dev/null; then
			wait "$pid"
			rc=$?
			bench_log "peer '$*' exited with $rc before READY"
			[ "$rc" = 77 ] && return 77
			return 1
		fi
		sleep 0.01
	done
	bench_log "peer '$*' not READY in 10 s"
	bench__stop_pid "$pid"
	return 1
}

# bench_peer_stop PID: stop a peer started above (before the script ends).
bench_peer_stop() { bench__stop_pid "$1"; }

# bench_nginx_start [nginx.py options]: nginx on 127.0.0.1:$NGINX_PORT,
# serving from $NGINX_DIR (see tests/servers/nginx.py for the URLs,
# --workers N|auto, --keepalive-timeout S, --no-access-log).  Dies if
# nginx cannot start.
bench_nginx_start() {
	bench_peer_start NGINX python3 "$BENCH_ROOT/tests/servers/nginx.py" "$@" ||
		bench_die "cannot start nginx (see above)"
}

bench_nginx_stop() { [ -n "${NGINX_PID:-}" ] && bench_peer_stop "$NGINX_PID"; NGINX_PID=; }

# bench_misbehave_start MODE [options]: tests/servers/misbehave.py on
# $MB_PORT.
bench_misbehave_start() {
	local mode=$1
	shift
	bench_peer_start MB python3 "$BENCH_ROOT/tests/servers/misbehave.py" \
		--mode "$mode" "$@" || bench_die "cannot start misbehave.py"
}

# bench_time VAR CMD...: run the program CMD (not a shell function; stdout
# and stderr untouched) and set VAR
# to "WALL USER SYS" in seconds: wall time, and the user and system CPU
# time of CMD and every descendant it waited for (wait4 rusage).  Returns
# CMD's exit status.
bench_time() {
	local var=$1 res rc=0
	shift
	res=$(mktemp "${TMPDIR:-/tmp}/ferry-bench-time-XXXXXX")
	python3 -c '
import os, sys, time
res = sys.argv[1]
t0 = time.monotonic()
try:
    pid = os.posix_spawnp(sys.argv[2], sys.argv[2:], os.environ)
except OSError as e:
    print("bench_time: %s: %s" % (sys.argv[2], e.strerror), file=sys.stderr)
    sys.exit(127)
while True:
    try:
        _, status, ru = os.wait4(pid, 0)
        break
    except InterruptedError:
        continue
wall = time.monotonic() - t0
with open(res, "w") as f:
    f.write("%.6f %.6f %.6f\n" % (wall, ru.ru_utime, ru.ru_stime))
code = os.waitstatus_to_exitcode(status)
sys.exit(code if code >= 0 else 128 - code)
' "$res" "$@" || rc=$?
	printf -v "$var" %s "$(cat "$res" 2>/dev/null)"
	rm -f "$res"
	return "$rc"
}

# bench_stats V...: print "median=M min=A max=B n=N" of the numbers given
# (median of an even count is the mean of the two middle values).
bench_stats() {
	[ $# -gt 0 ] || { echo "median=nan min=nan max=nan n=0"; return 1; }
	printf '%s\n' "$@" | sort -g | awk '
		{ v[NR] = $1 }
		END {
			m = (NR % 2) ? v[(NR + 1) / 2] \
				     : (v[NR / 2] + v[NR / 2 + 1]) / 2
			printf "median=%g min=%g max=%g n=%d\n", m, v[1], v[NR], NR
		}'
}

# bench_median V...: just the median.
bench_median() { bench_stats "$@" | sed 's/^median=\([^ ]*\).*/\1/'; }

# bench_p256_certs DIR - make, in DIR, a P-256 CA (ca.pem, ca.key) and a
# leaf for 127.0.0.1 and localhost signed by it (leaf.pem, leaf.key), valid
# two days. Dies if openssl fails.
bench_p256_certs() {
	(
		cd "$1" &&
		openssl ecparam -name prime256v1 -genkey -noout -out ca.key &&
		openssl req -x509 -new -key ca.key -subj /CN=ferry-bench-ca \
			-days 2 -addext basicConstraints=critical,CA:TRUE \
			-addext keyUsage=critical,keyCertSign -out ca.pem &&
		openssl ecparam -name prime256v1 -genkey -noout -out leaf.key &&
		openssl req -new -key leaf.key -subj /CN=127.0.0.1 -out leaf.csr &&
		printf '%s\n' 'subjectAltName=IP:127.0.0.1,DNS:localhost' \
			'basicConstraints=CA:FALSE' 'keyUsage=digitalSignature' \
			'extendedKeyUsage=serverAuth' >leaf.ext &&
		openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key \
			-CAcreateserial -days 2 -extfile leaf.ext -out leaf.pem
	) >/dev/null 2>&1 || bench_die "openssl could not make the certificates"
}

# bench_rounds N A B - N rounds of the functions A and B: A then B in odd
# rounds, B then A in even ones, so that neither always runs right after
# the other (caches, CPU frequency, the peer's state).
bench_rounds() {
	local r
	for r in $(seq "$1"); do
		bench_log "round $r/$1"
		if [ $((r % 2)) = 1 ]; then
			"$2"
			"$3"
		else
			"$3"
			"$2"
		fi
	done
}
