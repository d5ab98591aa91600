/* bench.c - placeholder until the load generator lands (bench.h). */
#include <stdio.h>

#include "bench.h"

int fetch_bench_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fputs("fetch: --bench is not built in\n", stderr);
	return 2;
}
