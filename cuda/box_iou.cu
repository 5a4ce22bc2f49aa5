#include "backend/box_iou.h"
#include "common.cuh"
#include "detcore/math/box.h"

namespace detcore::cuda {
namespace {

// One thread per output element; the row index is the slow one, so a warp
// reads consecutive boxes2 and writes consecutive outputs.
template <typename T>
__global__ void box_iou_kernel(const T* __restrict__ boxes1, const T* __restrict__ boxes2, int64_t n, int64_t m,
                               T* __restrict__ out) {
  using A = acc_t<T>;
  const int64_t total = n * m;
  for (const int64_t k : grid_stride_range(total)) {
    const int64_t i = k / m;
    const int64_t j = k - i * m;
    const auto a = math::load_box<A>(boxes1 + 4 * i);
    const auto b = math::load_box<A>(boxes2 + 4 * j);
    out[k] = static_cast<T>(math::iou(a, math::area(a), b, math::area(b)));
  }
}

// Integer boxes (int32 / int64) into a float32 out.
template <typename S>
__global__ void integer_box_iou_kernel(const S* __restrict__ boxes1, const S* __restrict__ boxes2, int64_t n, int64_t m,
                                       float* __restrict__ out) {
  for (const int64_t k : grid_stride_range(n * m)) {
    const int64_t i = k / m;
    const int64_t j = k - i * m;
    const auto a = math::load_box<int64_t>(boxes1 + 4 * i);
    const auto b = math::load_box<int64_t>(boxes2 + 4 * j);
    out[k] = math::integer_iou(a, math::area(a), b, math::area(b));
  }
}

}  // namespace

void box_iou(const TensorRef& boxes1, const TensorRef& boxes2, const TensorRef& out, Stream stream) {
  DeviceGuard guard(boxes1);
  const int64_t n = boxes1.size(0), m = boxes2.size(0);
  if (boxes1.dtype == DType::Int32 || boxes1.dtype == DType::Int64) {
    switch (boxes1.dtype) {
      DETCORE_DTYPE_CASE(Int32, int32_t, [&] {
        integer_box_iou_kernel<scalar_t><<<blocks_for(n * m), kThreadsPerBlock, 0, as_cuda_stream(stream)>>>(
            boxes1.ptr<const scalar_t>(), boxes2.ptr<const scalar_t>(), n, m, out.ptr<float>());
      })
      DETCORE_DTYPE_CASE(Int64, int64_t, [&] {
        integer_box_iou_kernel<scalar_t><<<blocks_for(n * m), kThreadsPerBlock, 0, as_cuda_stream(stream)>>>(
            boxes1.ptr<const scalar_t>(), boxes2.ptr<const scalar_t>(), n, m, out.ptr<float>());
      })
      default: break;
    }
    check_launch("box_iou");
    return;
  }
  DETCORE_DISPATCH_CUDA_FLOATING(boxes1.dtype, "box_iou", [&] {
    box_iou_kernel<scalar_t><<<blocks_for(n * m), kThreadsPerBlock, 0, as_cuda_stream(stream)>>>(
        boxes1.ptr<const scalar_t>(), boxes2.ptr<const scalar_t>(), n, m, out.ptr<scalar_t>());
  });
  check_launch("box_iou");
}

}  // namespace detcore::cuda
