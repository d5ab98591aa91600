#!/bin/sh
# tools/example.sh - run the blocking-HTTP example (tools/examples/
# http_threads.c) against an nginx on loopback that this script starts
# and stops. Installs and builds what is missing first.
set -eu
cd "$(dirname "$0")/.."
tools/setup.sh
tools/build.sh build

out=$(mktemp)
python3 tests/servers/nginx.py >"$out" &
peer=$!
trap 'kill $peer 2>/dev/null; wait $peer 2>/dev/null; rm -f "$out"' EXIT INT TERM
for _ in $(seq 100); do
	grep -q '^READY' "$out" && break
	kill -0 $peer 2>/dev/null || { echo "nginx did not start" >&2; exit 1; }
	sleep 0.1
done
port=$(awk '/^READY/ { print $2 }' "$out")
[ -n "$port" ] || { echo "nginx did not report a port" >&2; exit 1; }
echo "nginx on 127.0.0.1:$port (pid $peer)"
build/tools/examples/ferry-http-threads "http://127.0.0.1:$port"
