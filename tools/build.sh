#!/bin/sh
# tools/build.sh DIR [meson options...] - configure DIR if needed, build it.
# Quiet on success; on failure shows what meson or ninja said.
set -eu
cd "$(dirname "$0")/.."
dir=$1
shift
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if [ ! -f "$dir/build.ninja" ]; then
	meson setup "$dir" "$@" >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
fi
ninja -C "$dir" >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
