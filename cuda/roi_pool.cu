#include "backend/roi_pool.h"
#include "common.cuh"
#include "detcore/math/roi_pool.h"

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
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total; i += int64_t{blockDim.x} * gridDim.x) {
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
      if (!rows.empty() && !cols.empty()) {
        const T* plane = input + (n * channels + c) * height * width;
        value = math::roi_pool_lowest<A>();
        for (int64_t h = rows.begin; h < rows.end; ++h) {
          for (int64_t w = cols.begin; w < cols.end; ++w) {
            const A v = static_cast<A>(plane[h * width + w]);
            if (v > value) {  // first maximum in scan order; NaN never wins
              value = v;
              best_index = static_cast<int32_t>(h * width + w);
            }
          }
        }
      }
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
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total; i += int64_t{blockDim.x} * gridDim.x) {
    const int64_t cell = argmax[i];
    if (cell < 0 || cell >= plane_size) continue;
    const int64_t c = (i / bins) % channels;
    const int64_t k = i / (bins * channels);
    const int64_t n = math::roi_batch_index(static_cast<A>(boxes[5 * k]), batch);
    if (n < 0) continue;
    atomicAdd(grad_input + (n * channels + c) * plane_size + cell, grad_out[i]);
  }
}

}  // namespace

void roi_pool_forward(const TensorRef& input, const TensorRef& boxes, double spatial_scale, const TensorRef& out,
                      const TensorRef& argmax, Stream stream) {
  DeviceGuard guard(input);
  const int64_t total = out.numel();
  DETCORE_DISPATCH_CUDA_FLOATING(input.dtype, "roi_pool", [&] {
    roi_pool_forward_kernel<scalar_t><<<blocks_for(total), kThreadsPerBlock, 0, as_cuda_stream(stream)>>>(
        input.ptr<const scalar_t>(), boxes.ptr<const scalar_t>(), static_cast<acc_t<scalar_t>>(spatial_scale),
        input.size(0), input.size(1), input.size(2), input.size(3), out.size(2), out.size(3), total,
        out.ptr<scalar_t>(), argmax.ptr<int32_t>());
  });
  check_launch("roi_pool");
}

void roi_pool_backward(const TensorRef& grad_out, const TensorRef& boxes, const TensorRef& argmax,
                       const TensorRef& grad_input, Stream stream) {
  DeviceGuard guard(grad_input);
  check_cuda(cudaMemsetAsync(grad_input.data, 0, grad_input.numel() * dtype_size(grad_input.dtype),
                             as_cuda_stream(stream)),
             "roi_pool_backward");
  const int64_t total = grad_out.numel();
  if (total == 0) return;
  DETCORE_DISPATCH_CUDA_FLOATING(grad_out.dtype, "roi_pool_backward", [&] {
    roi_pool_backward_kernel<scalar_t><<<blocks_for(total), kThreadsPerBlock, 0, as_cuda_stream(stream)>>>(
        grad_out.ptr<const scalar_t>(), boxes.ptr<const scalar_t>(), argmax.ptr<const int32_t>(),
        grad_input.size(0), grad_input.size(1), grad_input.size(2) * grad_input.size(3),
        grad_out.size(2) * grad_out.size(3), total, grad_input.ptr<scalar_t>());
  });
  check_launch("roi_pool_backward");
}

}  // namespace detcore::cuda
