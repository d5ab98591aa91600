/*
 * fetch_bench_dev.c - fetch --bench as a program of its own, until
 * tools/fetch/ links bench.c into fetch (then this target goes away).
 */
#include "bench.h"

int main(int argc, char **argv)
{
	return fetch_bench_main(argc, argv);
}
