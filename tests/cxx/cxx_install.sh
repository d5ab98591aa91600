#!/bin/sh
# tests/cxx/cxx_install.sh BUILD_ROOT SOURCE_ROOT SANITIZE
#
# Installs the build into a temporary DESTDIR and, with g++ and clang++
# (-std=c++17), compiles C++ programs against the installed headers only
# and links them with `pkg-config --static --libs ferry` from the
# installed ferry.pc: every public header with -Wall -Wextra -pedantic
# -Werror, the README's examples (run), and tools/examples/http_threads.c
# compiled as C++ unchanged (run for its usage message). SANITIZE is
# meson's b_sanitize, so a sanitized libferry.a links with its runtime.
set -eu
build=$1
src=$2
san=$3

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
meson install -C "$build" --destdir "$tmp/root" --no-rebuild >"$tmp/install.log" 2>&1 ||
	{ cat "$tmp/install.log" >&2; exit 1; }

pc=$(find "$tmp/root" -name ferry.pc | head -n 1)
[ -n "$pc" ] || { echo "cxx: meson install put no ferry.pc in $tmp/root" >&2; exit 1; }
prefix=$(sed -n 's/^prefix=//p' "$pc")
# The .pc file names its install prefix; point it at the DESTDIR copy.
pcflags="--define-variable=prefix=$tmp/root$prefix"
export PKG_CONFIG_PATH="$(dirname "$pc")"
cflags=$(pkg-config $pcflags --static --cflags ferry)
libs=$(pkg-config $pcflags --static --libs ferry)
case "$cflags" in
*"$tmp/root"*) ;;
*) echo "cxx: pkg-config gave no include path inside $tmp/root: $cflags" >&2; exit 1 ;;
esac

extra=""
[ "$san" = none ] || extra="-fsanitize=$san"

ran=0
for cxx in g++ clang++-14 clang++; do
	command -v "$cxx" >/dev/null 2>&1 || continue
	case "$cxx" in clang++*) [ "$ran" -lt 2 ] || continue ;; esac
	echo "== $cxx"
	out="$tmp/$cxx"
	# shellcheck disable=SC2086
	"$cxx" -std=c++17 -Wall -Wextra -pedantic -Werror $extra $cflags \
		-c "$src/tests/cxx/headers.cpp" -o "$out-headers.o"
	# shellcheck disable=SC2086
	"$cxx" -std=c++17 -Wall -Werror $extra $cflags \
		"$src/tests/cxx/readme.cpp" "$out-headers.o" $libs -o "$out-readme"
	"$out-readme"
	# shellcheck disable=SC2086
	"$cxx" -std=c++17 -Wall -Werror $extra $cflags -x c++ \
		"$src/tools/examples/http_threads.c" -x none $libs -o "$out-threads"
	rc=0
	"$out-threads" >/dev/null 2>&1 || rc=$?
	[ "$rc" -eq 2 ] || { echo "cxx: http_threads without arguments exited $rc, not 2 (usage)" >&2; exit 1; }
	ran=$((ran + 1))
done
[ "$ran" -ge 2 ] || { echo "cxx: need g++ and clang++ (tools/setup.sh installs g++ and clang-14)" >&2; exit 1; }
echo "cxx: $ran compilers built, linked and ran the programs"
