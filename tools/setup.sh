#!/bin/sh
# tools/setup.sh - install what ferry needs to build and test, from Debian's
# packages only. Idempotent: installs nothing when everything is present.
# Needs root (or sudo) only when something is missing.
set -eu

PKGS="gcc g++ libc6-dev liburing-dev libbearssl-dev node-llhttp libcriterion-dev
meson ninja-build pkg-config python3 nginx-light openssl curl wrk
ca-certificates valgrind zlib1g-dev
clang-14 libclang-rt-14-dev"

missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0

echo "setup: installing:$missing" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
