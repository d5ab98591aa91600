/*
 * bench.h - fetch's load generator mode, entered when "--bench" appears
 * anywhere on the command line.
 */
#ifndef FETCH_BENCH_H
#define FETCH_BENCH_H

/*
 * fetch_bench_main - run `fetch --bench -c CONNS -d SECONDS [-n REQUESTS]
 * [-t LOOPS] [--json-stats] URL`: keep-alive requests on CONNS connections
 * until the time or the count runs out, then requests/s, bytes/s,
 * latency percentiles and errors by kind on stdout. @argc and @argv are
 * main's, unchanged ("--bench" among them). Returns the process's exit
 * code: 0, 2 for bad usage, or curl's code of the failure that stopped it.
 * Thread: the main thread, once.
 */
int fetch_bench_main(int argc, char **argv);

#endif /* FETCH_BENCH_H */
