/*
 * bench.h - fetch --bench: a keep-alive load generator on the loop-side
 * client (ferry/http.h), like wrk.
 */
#ifndef FETCH_BENCH_H
#define FETCH_BENCH_H

/*
 * fetch_bench_main - run `fetch --bench` and return the exit status.
 *
 *   fetch --bench [-c CONNS] [-d SECONDS] [-n REQUESTS] [-t LOOPS]
 *                 [--json-stats] [-k] [--cacert FILE] URL
 *
 * @argv is the whole command line (argv[0] the program name); "--bench"
 * may appear anywhere in it and is skipped. Keeps CONNS (default 64)
 * keep-alive connections busy with GETs of URL from LOOPS (default 1)
 * loops, each on its own thread, until SECONDS (default 10) have passed
 * or REQUESTS (default: no limit) have been sent, whichever comes first;
 * a request still running at the deadline is given one more second, then
 * cancelled. Then prints requests/s, body bytes/s, latency p50, p90, p99,
 * p99.9 and max (from a log-bucketed histogram: about 3% precision, no
 * allocation per request) and errors by kind; --json-stats prints the
 * same as one JSON object on one line instead.
 *
 * Returns 0 when every request got a 2xx or 3xx answer, 1 when some
 * failed (the counts say how), 2 on bad usage, 3 on a bad URL; fetch's
 * exit codes.
 * Thread: the caller's; starts LOOPS threads and joins them all.
 */
int fetch_bench_main(int argc, char **argv);

#endif
