#include "backend/box_coding.h"
#include "common.cuh"
#include "detcore/math/box_coding.h"

namespace detcore::cuda {
namespace {

template <typename A>
math::BoxCoderParams<A> params_of(const std::array<double, 4>& weights, double clamp) {
  return {static_cast<A>(weights[0]), static_cast<A>(weights[1]), static_cast<A>(weights[2]),
          static_cast<A>(weights[3]), static_cast<A>(clamp)};
}

template <typename T, typename A>
__device__ __forceinline__ void store4(T* p, A a, A b, A c, A d) {
  p[0] = static_cast<T>(a), p[1] = static_cast<T>(b), p[2] = static_cast<T>(c), p[3] = static_cast<T>(d);
}

// One thread per box.
template <typename T>
__global__ void encode_kernel(const T* __restrict__ reference, const T* __restrict__ proposals, int64_t n,
                              math::BoxCoderParams<acc_t<T>> p, T* __restrict__ out) {
  using A = acc_t<T>;
  for (const int64_t i : grid_stride_range(n)) {
    const auto d = math::encode_box(math::load_box<A>(reference + 4 * i), math::load_box<A>(proposals + 4 * i), p);
    store4(out + 4 * i, d.dx, d.dy, d.dw, d.dh);
  }
}

// One thread per (box, delta set) pair e: deltas[e] against boxes[e / k].
template <typename T>
__global__ void decode_kernel(const T* __restrict__ deltas, const T* __restrict__ boxes, int64_t n, int64_t k,
                              math::BoxCoderParams<acc_t<T>> p, T* __restrict__ out) {
  using A = acc_t<T>;
  const int64_t total = n * k;
  for (const int64_t e : grid_stride_range(total)) {
    const auto b = math::decode_box(math::load_deltas<A>(deltas + 4 * e), math::load_box<A>(boxes + 4 * (e / k)), p);
    store4(out + 4 * e, b.x1, b.y1, b.x2, b.y2);
  }
}

// One thread per box: its k delta gradients and the box gradient summed over
// them (no atomics, a fixed summation order).
template <typename T>
__global__ void decode_backward_kernel(const T* __restrict__ grad_out, const T* __restrict__ deltas,
                                       const T* __restrict__ boxes, int64_t n, int64_t k,
                                       math::BoxCoderParams<acc_t<T>> p, T* __restrict__ grad_deltas,
                                       T* __restrict__ grad_boxes) {
  using A = acc_t<T>;
  for (const int64_t i : grid_stride_range(n)) {
    const auto box = math::load_box<A>(boxes + 4 * i);
    math::Box<A> grad_box{A(0), A(0), A(0), A(0)};
    for (int64_t j = 0; j < k; ++j) {
      const int64_t e = i * k + j;
      math::Deltas<A> g;
      math::decode_box_backward(math::load_box<A>(grad_out + 4 * e), math::load_deltas<A>(deltas + 4 * e), box, p, g,
                                grad_box);
      store4(grad_deltas + 4 * e, g.dx, g.dy, g.dw, g.dh);
    }
    store4(grad_boxes + 4 * i, grad_box.x1, grad_box.y1, grad_box.x2, grad_box.y2);
  }
}

}  // namespace

void encode_boxes(const BoxCodingParams& params, const TensorRef& reference_boxes, const TensorRef& proposals,
                  const TensorRef& out, Stream stream) {
  DeviceGuard guard(out);
  const int64_t n = out.size(0);
  DETCORE_DISPATCH_CUDA_FLOATING(out.dtype, "encode_boxes", [&] {
    encode_kernel<scalar_t><<<blocks_for(n), kThreadsPerBlock, 0, as_cuda_stream(stream)>>>(
        reference_boxes.ptr<const scalar_t>(), proposals.ptr<const scalar_t>(), n,
        params_of<acc_t<scalar_t>>(params.weights, 0.0), out.ptr<scalar_t>());
  });
  check_launch("encode_boxes");
}

void decode_boxes(const BoxCodingParams& params, const TensorRef& deltas, const TensorRef& boxes, const TensorRef& out,
                  Stream stream) {
  DeviceGuard guard(out);
  const int64_t n = deltas.size(0), k = deltas.size(1) / 4;
  DETCORE_DISPATCH_CUDA_FLOATING(out.dtype, "decode_boxes", [&] {
    decode_kernel<scalar_t><<<blocks_for(n * k), kThreadsPerBlock, 0, as_cuda_stream(stream)>>>(
        deltas.ptr<const scalar_t>(), boxes.ptr<const scalar_t>(), n, k,
        params_of<acc_t<scalar_t>>(params.weights, params.clamp), out.ptr<scalar_t>());
  });
  check_launch("decode_boxes");
}

void decode_boxes_backward(const BoxCodingParams& params, const TensorRef& grad_out, const TensorRef& deltas,
                           const TensorRef& boxes, const TensorRef& grad_deltas, const TensorRef& grad_boxes,
                           Stream stream) {
  DeviceGuard guard(deltas);
  const int64_t n = deltas.size(0), k = deltas.size(1) / 4;
  DETCORE_DISPATCH_CUDA_FLOATING(deltas.dtype, "decode_boxes_backward", [&] {
    decode_backward_kernel<scalar_t><<<blocks_for(n), kThreadsPerBlock, 0, as_cuda_stream(stream)>>>(
        grad_out.ptr<const scalar_t>(), deltas.ptr<const scalar_t>(), boxes.ptr<const scalar_t>(), n, k,
        params_of<acc_t<scalar_t>>(params.weights, params.clamp), grad_deltas.ptr<scalar_t>(),
        grad_boxes.ptr<scalar_t>());
  });
  check_launch("decode_boxes_backward");
}

}  // namespace detcore::cuda
