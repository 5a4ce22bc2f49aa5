// Launch geometry for element-wise kernels: a grid of blocks_for(n) blocks of
// kThreadsPerBlock threads whose threads walk the n elements with
// grid_stride_range(n):
//
//   for (const int64_t i : grid_stride_range(n)) out[i] = ...;
//
// Thread t of T visits t, t + T, t + 2T, ... < n in int64 (no overflow for
// n > 2^31).
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "detcore/math/ceil_div.h"

namespace detcore::cuda {

constexpr int kThreadsPerBlock = 256;

// Blocks for a grid-stride loop over n elements; capped so the grid size stays
// legal, the loop covers the rest.
inline unsigned int blocks_for(int64_t n, int threads = kThreadsPerBlock) {
  const int64_t blocks = math::ceil_div<int64_t>(n, threads);
  return static_cast<unsigned int>(std::min<int64_t>(std::max<int64_t>(blocks, 1), int64_t{1} << 20));
}

class GridStrideRange {
 public:
  class Iterator {
   public:
    __device__ Iterator(int64_t index, int64_t step) : index_(index), step_(step) {}
    __device__ int64_t operator*() const { return index_; }
    __device__ Iterator& operator++() {
      index_ += step_;
      return *this;
    }
    // Compared with end() only: "not past the end".
    __device__ bool operator!=(const Iterator& end) const { return index_ < end.index_; }

   private:
    int64_t index_, step_;
  };

  __device__ explicit GridStrideRange(int64_t n)
      : first_(blockIdx.x * int64_t{blockDim.x} + threadIdx.x), step_(int64_t{blockDim.x} * gridDim.x), n_(n) {}
  __device__ Iterator begin() const { return Iterator(first_, step_); }
  __device__ Iterator end() const { return Iterator(n_, step_); }

 private:
  int64_t first_, step_, n_;
};

__device__ inline GridStrideRange grid_stride_range(int64_t n) { return GridStrideRange(n); }

}  // namespace detcore::cuda
