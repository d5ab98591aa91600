// Every public header, included by a C++ translation unit: compiled with
// -Wall -Wextra -pedantic -Werror by cxx_install.sh (g++ and clang++,
// -std=c++17), against the installed headers only.
#include "ferry/error.h"
#include "ferry/list.h"
#include "ferry/loop.h"
#include "ferry/timer.h"
#include "ferry/offload.h"
#include "ferry/url.h"
#include "ferry/http.h"
#include "ferry/bridge.h"
#include "ferry/session.h"

// The same again: the include guards and extern "C" blocks nest.
#include "ferry/session.h"

// Linked from readme.cpp: proves the declarations have C linkage (a
// missing extern "C" would make this an undefined C++-mangled symbol).
const char *cxx_headers_strerror(int code)
{
	return ferry_strerror(code);
}
