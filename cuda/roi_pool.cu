#include "backend/roi_pool.h"
#include "common.cuh"
#include "detcore/math/roi_pool.h"
#include "max_pool_warp.cuh"

namespace detcore::cuda {
namespace {

// One thread per pooled output (k, c, ph, pw), pw fastest. An RoI whose batch
// index is not an integer in [0, N) outputs zeros and argmax -1 (the CPU
// entry refuses it instead; here that check would need a device sync).
template <typename T>
__global__ void roi_pool_forward_kernel(const T* __restrict__ input, const T* __restrict__ boxes,
                                        acc_t<T> spatial_scale, int64_t batch, int64_t channels, int64_t height,
                                        int64_t width, int64_t pooled_height, int64_t pooled_width, int64_t total,
                                        T* __restrict__ out, int32_t* __restrict__ argmax) {
  using A = acc_t<T>;
  for (const int64_t i : grid_stride_range(total)) {
    const int64_t pw = i % pooled_width;
    const int64_t ph = (i / pooled_width) % pooled_height;
    const int64_t c = (i / (pooled_width * pooled_height)) % channels;
    const int64_t k = i / (pooled_width * pooled_height * channels);
    const T* roi = boxes + 5 * k;
    A value = A(0);
    int32_t best_index = -1;
    const int64_t n = math::roi_batch_index(static_cast<A>(roi[0]), batch);
    if (n >= 0) {
      const auto grid = math::roi_pool_grid(static_cast<A>(roi[1]), static_cast<A>(roi[2]), static_cast<A>(roi[3]),
                                            static_cast<A>(roi[4]), spatial_scale, pooled_height, pooled_width);
      const math::RoiPoolSpan rows = math::roi_pool_rows(grid, ph, height);
      const math::RoiPoolSpan cols = math::roi_pool_cols(grid, pw, width);
      const math::PooledMax<A> best =
          math::max_pool_bin<A>(input + (n * channels + c) * height * width, width, rows, cols);
      value = best.value;
      best_index = best.index;
    }
    out[i] = static_cast<T>(value);
    argmax[i] = best_index;
  }
}

// One thread per pooled gradient, added at its argmax (grad_input is zeroed
// first). atomicAdd makes the summation order, and so the last bits of
// cells shared by several bins, vary between runs.
template <typename T>
__global__ void roi_pool_backward_kernel(const T* __restrict__ grad_out, const T* __restrict__ boxes,
                                         const int32_t* __restrict__ argmax, int64_t batch, int64_t channels,
                                         int64_t plane_size, int64_t bins, int64_t total, T* __restrict__ grad_input) {
  using A = acc_t<T>;
  for (const int64_t i : grid_stride_range(total)) {
    const int64_t cell = argmax[i];
    if (cell < 0 || cell >= plane_size) continue;
    const int64_t c = (i / bins) % channels;
    const int64_t k = i / (bins * channels);
    const int64_t n = math::roi_batch_index(static_cast<A>(boxes[5 * k]), batch);
    if (n < 0) continue;
    atomicAdd(grad_input + (n * channels + c) * plane_size + cell, grad_out[i]);
  }
}

// The deterministic backward: one warp owns one (image, channel) plane of
// grad_input. It zeroes the plane, then walks every (RoI, bin) gradient in
// order, 32 at a time; lanes that target the same cell in a step are summed
// in lane order by the lowest of them. With no atomics the result is the same
// bit for bit on every run. Its parallelism is N * C warps.
template <typename T>
__global__ void roi_pool_backward_deterministic_kernel(const T* __restrict__ grad_out, const T* __restrict__ boxes,
                                                       const int32_t* __restrict__ argmax, int64_t batch,
                                                       int64_t channels, int64_t plane_size, int64_t bins,
                                                       int64_t num_rois, T* __restrict__ grad_input) {
  using A = acc_t<T>;
  const int lane = threadIdx.x % kWarp;
  const int64_t warps_per_block = blockDim.x / kWarp;
  const int64_t planes = batch * channels;
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
        const int64_t k = e / bins;
        if (math::roi_batch_index(static_cast<A>(boxes[5 * k]), batch) == n) {
          const int64_t offset = (k * channels + c) * bins + e % bins;
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

void roi_pool_forward(const RoIPoolParams& params, const TensorRef& input, const TensorRef& boxes, const TensorRef& out,
                      const TensorRef& argmax, Stream stream) {
  DeviceGuard guard(input);
  const int64_t total = out.numel();
  DETCORE_DISPATCH_CUDA_FLOATING(input.dtype, "roi_pool", [&] {
    roi_pool_forward_kernel<scalar_t><<<blocks_for(total), kThreadsPerBlock, 0, as_cuda_stream(stream)>>>(
        input.ptr<const scalar_t>(), boxes.ptr<const scalar_t>(), static_cast<acc_t<scalar_t>>(params.spatial_scale),
        input.size(0), input.size(1), input.size(2), input.size(3), out.size(2), out.size(3), total,
        out.ptr<scalar_t>(), argmax.ptr<int32_t>());
  });
  check_launch("roi_pool");
}

void roi_pool_backward(const RoIPoolParams& params, const TensorRef& grad_out, const TensorRef& boxes,
                       const TensorRef& argmax, const TensorRef& grad_input, Stream stream) {
  DeviceGuard guard(grad_input);
  if (params.deterministic) {
    const int64_t warps_per_block = kThreadsPerBlock / kWarp;
    const int64_t planes = grad_input.size(0) * grad_input.size(1);
    DETCORE_DISPATCH_CUDA_FLOATING(grad_out.dtype, "roi_pool_backward", [&] {
      roi_pool_backward_deterministic_kernel<scalar_t>
          <<<blocks_for(planes, static_cast<int>(warps_per_block)), kThreadsPerBlock, 0, as_cuda_stream(stream)>>>(
              grad_out.ptr<const scalar_t>(), boxes.ptr<const scalar_t>(), argmax.ptr<const int32_t>(),
              grad_input.size(0), grad_input.size(1), grad_input.size(2) * grad_input.size(3),
              grad_out.size(2) * grad_out.size(3), grad_out.size(0), grad_input.ptr<scalar_t>());
    });
    check_launch("roi_pool_backward");
    return;
  }
  check_cuda(
      cudaMemsetAsync(grad_input.data, 0, grad_input.numel() * dtype_size(grad_input.dtype), as_cuda_stream(stream)),
      "roi_pool_backward");
  const int64_t total = grad_out.numel();
  if (total == 0) return;
  DETCORE_DISPATCH_CUDA_FLOATING(grad_out.dtype, "roi_pool_backward", [&] {
    roi_pool_backward_kernel<scalar_t><<<blocks_for(total), kThreadsPerBlock, 0, as_cuda_stream(stream)>>>(
        grad_out.ptr<const scalar_t>(), boxes.ptr<const scalar_t>(), argmax.ptr<const int32_t>(), grad_input.size(0),
        grad_input.size(1), grad_input.size(2) * grad_input.size(3), grad_out.size(2) * grad_out.size(3), total,
        grad_input.ptr<scalar_t>());
  });
  check_launch("roi_pool_backward");
}

}  // namespace detcore::cuda
