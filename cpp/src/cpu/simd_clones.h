// Function multi-versioning for the CPU hot loops.
//
// The wheel targets baseline x86-64 (SSE2). A function marked
// DETCORE_SIMD_CLONES is also compiled for x86-64-v3 (AVX2) and x86-64-v4
// (AVX-512), and the dynamic loader picks the best one the CPU has (an ifunc,
// hence GCC on Linux only; elsewhere the mark is empty). The build turns off
// FMA contraction (-ffp-contract=off), so every clone performs the same IEEE
// operations in the same order: results never depend on the clone.
#pragma once

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define DETCORE_SIMD_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define DETCORE_SIMD_CLONES
#endif
