/*
 * Random numbers for the prepare-data C extensions: splitmix64 streams.
 * Small, fast and deterministic; every stream is seeded from values the
 * Python side derives from --random_seed, so outputs depend on nothing else.
 */
#ifndef BERTPIPE_RANDOM_H
#define BERTPIPE_RANDOM_H

#include <stdint.h>

typedef struct {
    uint64_t state;
} Rng;

static inline uint64_t rng_next(Rng *r) {
    uint64_t z = (r->state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* An independent-looking stream per (seed, index). */
static inline Rng rng_for_row(uint64_t seed, uint64_t row) {
    Rng mix = {seed ^ (row * 0xD1B54A32D192ED03ULL)};
    Rng r = {rng_next(&mix) ^ row};
    return r;
}

/* Uniform double in [0, 1) with 53 random bits. */
static inline double rng_uniform(Rng *r) { return (double)(rng_next(r) >> 11) * 0x1.0p-53; }

/* Uniform integer in [0, n), n >= 1 (multiply-shift; bias below n / 2**64). */
static inline uint64_t rng_below(Rng *r, uint64_t n) {
    return (uint64_t)(((unsigned __int128)rng_next(r) * n) >> 64);
}

#endif
