#!/bin/sh
# tools/demo.sh - the quick start's first command: install what is missing,
# build, start an nginx on loopback, and show fetch at work against it:
# several downloads in parallel with progress, checked against the server's
# checksums, a -w line, and a short --bench run. Stops nginx on exit.
set -eu
cd "$(dirname "$0")/.."
tools/setup.sh
tools/build.sh build
fetch=build/tools/fetch/fetch

out=$(mktemp -d)
python3 tests/servers/nginx.py --big $((256 << 20)) >"$out/ready" &
peer=$!
trap 'kill $peer 2>/dev/null; wait $peer 2>/dev/null; rm -rf "$out"' EXIT INT TERM
for _ in $(seq 100); do
	grep -q '^READY' "$out/ready" && break
	kill -0 $peer 2>/dev/null || { echo "demo: nginx did not start" >&2; exit 1; }
	sleep 0.1
done
read -r _ port ngdir <"$out/ready"
[ -n "$port" ] || { echo "demo: nginx did not report a port" >&2; exit 1; }
base=http://127.0.0.1:$port
echo "nginx on 127.0.0.1:$port (pid $peer)"

show() {
	echo
	printf '$ fetch'
	printf " '%s'" "$@"
	printf '\n'
	"$fetch" "$@"
}

show -V
# Where io_uring is blocked (a container's seccomp profile, the sysctl),
# the same fetch runs on epoll; FERRY_IO_URING=off forces that here.
echo
echo "\$ FERRY_IO_URING=off fetch -V | grep Backend; FERRY_IO_URING=off fetch -sS -o /dev/null -w ... $base/16m.bin"
FERRY_IO_URING=off "$fetch" -V | grep '^Backend'
FERRY_IO_URING=off "$fetch" -sS -o /dev/null \
	-w '%{http_code} %{size_download} bytes in %{time_total} s on epoll\n' "$base/16m.bin"
show -Z -# --output-dir "$out" -O "$base/big.bin" -O "$base/16m.bin" \
	-O "$base/1m.bin" -O "$base/small.txt"
echo
echo "\$ sha256sum -c  # against the server's own list"
(cd "$out" && grep -E ' (16m.bin|1m.bin|small.txt)$' "$ngdir/www/SHA256SUMS" | sha256sum -c)
cmp -n $((256 << 20)) "$out/big.bin" /dev/zero && echo "big.bin: OK (256 MiB of zeros)"
show -s -o /dev/null -w '%{http_code} %{size_download} bytes in %{time_total} s (connect %{time_connect} s, first byte %{time_starttransfer} s)\n' \
	"$base/big.bin"
show -sS -i "$base/small.txt"
show --bench -c 16 -d 2 "$base/small.txt"
