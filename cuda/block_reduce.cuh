// Deterministic block-wide reductions for the CUDA kernels.
#pragma once

namespace detcore::cuda {

// Sum over the block in a fixed order (shuffle tree, then warp 0 over the
// warps' sums); the result is valid in thread 0. blockDim.x is a multiple of
// 32 and at most 1024; every thread of the block calls it.
template <typename A>
__device__ A block_sum(A value) {
  __shared__ A warp_sums[32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  for (int offset = 16; offset > 0; offset /= 2) value += __shfl_down_sync(0xffffffffu, value, offset);
  if (lane == 0) warp_sums[warp] = value;
  __syncthreads();
  if (warp == 0) {
    value = lane < int(blockDim.x / 32) ? warp_sums[lane] : A(0);
    for (int offset = 16; offset > 0; offset /= 2) value += __shfl_down_sync(0xffffffffu, value, offset);
  }
  return value;
}

}  // namespace detcore::cuda
