#include "backend/spp_pool.h"
#include "common.cuh"
#include "detcore/math/spp_pool.h"
#include "max_pool_warp.cuh"

namespace detcore::cuda {
namespace {

using math::SppLevels;

// One thread per pooled output (k, column), the column fastest; the column
// names the level, channel and bin (math::spp_pool_locate). An RoI whose
// batch index is not an integer in [0, N) outputs zeros and argmax -1 (the
// CPU entry refuses it instead; here that check would need a device sync).
template <typename T>
__global__ void spp_pool_forward_kernel(const T* __restrict__ input, const T* __restrict__ boxes, SppLevels levels,
                                        acc_t<T> spatial_scale, int64_t batch, int64_t channels, int64_t height,
                                        int64_t width, int64_t row_size, int64_t total, T* __restrict__ out,
                                        int32_t* __restrict__ argmax) {
  using A = acc_t<T>;
  for (const int64_t i : grid_stride_range(total)) {
    const int64_t k = i / row_size;
    const math::SppBin bin = math::spp_pool_locate(levels, channels, i % row_size);
    const int64_t n_bins = levels.size[bin.level];
    const T* roi = boxes + 5 * k;
    A value = A(0);
    int32_t best_index = -1;
    const int64_t n = math::roi_batch_index(static_cast<A>(roi[0]), batch);
    if (n >= 0) {
      const math::SppGrid grid = math::spp_pool_grid(static_cast<A>(roi[1]), static_cast<A>(roi[2]),
                                                     static_cast<A>(roi[3]), static_cast<A>(roi[4]), spatial_scale);
      const math::SppSpan rows = math::spp_pool_rows(grid, bin.row, n_bins, height);
      const math::SppSpan cols = math::spp_pool_cols(grid, bin.col, n_bins, width);
      const math::PooledMax<A> best =
          math::max_pool_bin<A>(input + (n * channels + bin.channel) * height * width, width, rows, cols);
      value = best.value;
      best_index = best.index;
    }
    out[i] = static_cast<T>(value);
    argmax[i] = best_index;
  }
}

// One thread per pooled gradient, added at its argmax (grad_input is zeroed
// first). atomicAdd makes the summation order, and so the last bits of cells
// shared by several bins, vary between runs.
template <typename T>
__global__ void spp_pool_backward_kernel(const T* __restrict__ grad_out, const T* __restrict__ boxes,
                                         const int32_t* __restrict__ argmax, SppLevels levels, int64_t batch,
                                         int64_t channels, int64_t plane_size, int64_t row_size, int64_t total,
                                         T* __restrict__ grad_input) {
  using A = acc_t<T>;
  for (const int64_t i : grid_stride_range(total)) {
    const int64_t cell = argmax[i];
    if (cell < 0 || cell >= plane_size) continue;
    const int64_t k = i / row_size;
    const int64_t n = math::roi_batch_index(static_cast<A>(boxes[5 * k]), batch);
    if (n < 0) continue;
    const int64_t c = math::spp_pool_locate(levels, channels, i % row_size).channel;
    atomicAdd(grad_input + (n * channels + c) * plane_size + cell, grad_out[i]);
  }
}

// The deterministic backward: one warp owns one (image, channel) plane of
// grad_input, zeroes it, then walks that channel's (RoI, bin) gradients in
// order, 32 at a time; lanes that target the same cell in a step are summed
// in lane order by the lowest of them. No atomics: the same bits every run.
template <typename T>
__global__ void spp_pool_backward_deterministic_kernel(const T* __restrict__ grad_out, const T* __restrict__ boxes,
                                                       const int32_t* __restrict__ argmax, SppLevels levels,
                                                       int64_t batch, int64_t channels, int64_t plane_size,
                                                       int64_t num_rois, T* __restrict__ grad_input) {
  using A = acc_t<T>;
  const int lane = threadIdx.x % kWarp;
  const int64_t warps_per_block = blockDim.x / kWarp;
  const int64_t planes = batch * channels;
  const int64_t bins = levels.first_bin[levels.count];  // per channel and RoI
  const int64_t row_size = channels * bins;
  const int64_t entries = num_rois * bins;
  for (int64_t plane_index = blockIdx.x * warps_per_block + threadIdx.x / kWarp; plane_index < planes;
       plane_index += int64_t{gridDim.x} * warps_per_block) {
    const int64_t n = plane_index / channels, c = plane_index % channels;
    T* plane = grad_input + plane_index * plane_size;
    for (int64_t i = lane; i < plane_size; i += kWarp) plane[i] = static_cast<T>(A(0));
    __syncwarp();
    for (int64_t first = 0; first < entries; first += kWarp) {
      const int64_t e = first + lane;
      long long cell = -1;
      A grad = A(0);
      if (e < entries) {
        const int64_t k = e / bins, b = e % bins;
        if (math::roi_batch_index(static_cast<A>(boxes[5 * k]), batch) == n) {
          int level = 0;
          while (level + 1 < levels.count && b >= levels.first_bin[level + 1]) ++level;
          const int64_t level_bins = levels.size[level] * levels.size[level];
          const int64_t offset =
              k * row_size + channels * levels.first_bin[level] + c * level_bins + (b - levels.first_bin[level]);
          const int64_t index = argmax[offset];
          if (index >= 0 && index < plane_size) {
            cell = index;
            grad = static_cast<A>(grad_out[offset]);
          }
        }
      }
      warp_add_to_cells(plane, cell, grad, lane);
    }
  }
}

}  // namespace

void spp_pool_forward(const SppLevels& levels, double spatial_scale, const TensorRef& input, const TensorRef& boxes,
                      const TensorRef& out, const TensorRef& argmax, Stream stream) {
  DeviceGuard guard(input);
  const int64_t total = out.numel();
  DETCORE_DISPATCH_CUDA_FLOATING(input.dtype, "spp_pool", [&] {
    spp_pool_forward_kernel<scalar_t><<<blocks_for(total), kThreadsPerBlock, 0, as_cuda_stream(stream)>>>(
        input.ptr<const scalar_t>(), boxes.ptr<const scalar_t>(), levels, static_cast<acc_t<scalar_t>>(spatial_scale),
        input.size(0), input.size(1), input.size(2), input.size(3), out.size(1), total, out.ptr<scalar_t>(),
        argmax.ptr<int32_t>());
  });
  check_launch("spp_pool");
}

void spp_pool_backward(const SppLevels& levels, bool deterministic, const TensorRef& grad_out, const TensorRef& boxes,
                       const TensorRef& argmax, const TensorRef& grad_input, Stream stream) {
  DeviceGuard guard(grad_input);
  const int64_t plane_size = grad_input.size(2) * grad_input.size(3);
  if (deterministic) {
    const int64_t warps_per_block = kThreadsPerBlock / kWarp;
    const int64_t planes = grad_input.size(0) * grad_input.size(1);
    DETCORE_DISPATCH_CUDA_FLOATING(grad_out.dtype, "spp_pool_backward", [&] {
      spp_pool_backward_deterministic_kernel<scalar_t>
          <<<blocks_for(planes, static_cast<int>(warps_per_block)), kThreadsPerBlock, 0, as_cuda_stream(stream)>>>(
              grad_out.ptr<const scalar_t>(), boxes.ptr<const scalar_t>(), argmax.ptr<const int32_t>(), levels,
              grad_input.size(0), grad_input.size(1), plane_size, grad_out.size(0), grad_input.ptr<scalar_t>());
    });
    check_launch("spp_pool_backward");
    return;
  }
  check_cuda(
      cudaMemsetAsync(grad_input.data, 0, grad_input.numel() * dtype_size(grad_input.dtype), as_cuda_stream(stream)),
      "spp_pool_backward");
  const int64_t total = grad_out.numel();
  if (total == 0) return;
  DETCORE_DISPATCH_CUDA_FLOATING(grad_out.dtype, "spp_pool_backward", [&] {
    spp_pool_backward_kernel<scalar_t><<<blocks_for(total), kThreadsPerBlock, 0, as_cuda_stream(stream)>>>(
        grad_out.ptr<const scalar_t>(), boxes.ptr<const scalar_t>(), argmax.ptr<const int32_t>(), levels,
        grad_input.size(0), grad_input.size(1), plane_size, grad_out.size(1), total, grad_input.ptr<scalar_t>());
  });
  check_launch("spp_pool_backward");
}

}  // namespace detcore::cuda
