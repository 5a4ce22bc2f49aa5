// The step shared by the deterministic backward kernels of the max-pooling
// ops (roi_pool, spp_pool): one warp owns one plane of grad_input and adds
// 32 (cell, gradient) pairs to it at a time, without atomics.
#pragma once

#include "common.cuh"

namespace detcore::cuda {

constexpr int kWarp = 32;

// Each lane holds a cell of `plane` (-1: none) and its gradient. Lanes that
// target the same cell in this step are summed in lane order by the lowest of
// them, which adds the sum to the cell: the same bits on every run.
template <typename T, typename A>
__device__ __forceinline__ void warp_add_to_cells(T* plane, long long cell, A grad, int lane) {
  const unsigned all = 0xffffffffu;
  const unsigned same_cell = __match_any_sync(all, cell);
  if (__any_sync(all, cell >= 0 && __popc(same_cell) > 1)) {
    // Shared cells in this step: each group's lowest lane sums its lanes.
    A sum = A(0);
    for (int src = 0; src < kWarp; ++src) {
      const A value = __shfl_sync(all, grad, src);
      if (same_cell & (1u << src)) sum += value;
    }
    grad = sum;
  }
  if (cell >= 0 && lane == __ffs(same_cell) - 1) {
    plane[cell] = static_cast<T>(static_cast<A>(plane[cell]) + grad);
  }
  __syncwarp();  // this step's writes are seen by the next step's lanes
}

}  // namespace detcore::cuda
