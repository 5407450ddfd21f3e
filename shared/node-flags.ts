/**
 * The V8 heap settings the API and worker processes run with, on every way to start them
 * (npm scripts, npm start, the image, docker compose, and the tests' and benches'
 * launchers). V8's defaults let a busy process's old generation grow to about four times
 * its live heap before a full collection, and its young generation to 2 × 16 MB; a
 * process that holds about 25 MB of live objects then sat near 200–250 MB RSS under load.
 * A growth factor of 1.5 and 8 MB semi-spaces keep it near 150 MB, at the price of more
 * CPU spent collecting, most under ingest (the figures are in docs/performance.md).
 * `--heap-growing-percent` is not accepted in NODE_OPTIONS, so these go on the command line.
 */
export const NODE_FLAGS = ['--max-semi-space-size=8', '--heap-growing-percent=50'] as const;

/**
 * The environment both processes run with, on the same ways to start them (the image sets
 * it with ENV). glibc gives each thread that allocates an arena of its own, up to eight per
 * core, and keeps what they freed: the driver's threads that run SQLite's statements held
 * the API at 155–161 MB RSS in 1,000-record batches with ?process=true, with 77 MB of V8
 * heap; with two arenas, 146–147 MB at the same throughput.
 */
export const NODE_ENVIRONMENT = { MALLOC_ARENA_MAX: '2' } as const;
