// Portability macros shared by the CPU and CUDA translation units.
#pragma once

// Per-element math is written once and compiled for both the host and the
// device: under nvcc it becomes a __host__ __device__ inline function.
#if defined(__CUDACC__)
#define DETCORE_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define DETCORE_HOST_DEVICE inline
#endif
