// CUDA generalized / distance / complete IoU: pairwise matrices (one thread
// per output element) and the paired losses with their gradients (one thread
// per pair). float16 / bfloat16 / float32 compute in float.
//
// Loss Sum / Mean are deterministic, without atomics: a fixed grid (a
// function of N only) where each thread sums its grid-stride pairs in order
// and each block reduces in a fixed tree into one partial in the workspace;
// then one block adds the partials in a fixed tree.
#include <type_traits>

#include "backend/box_iou_variants.h"
#include "block_reduce.cuh"
#include "common.cuh"

namespace detcore::cuda {
namespace {

constexpr int kReduceBlocks = 1024;
constexpr int kFinalThreads = 1024;

template <IoUVariant V, typename T>
__global__ void pairwise_kernel(const T* __restrict__ boxes1, const T* __restrict__ boxes2, int64_t n, int64_t m,
                                acc_t<T> eps, T* __restrict__ out) {
  using A = acc_t<T>;
  const int64_t total = n * m;
  for (const int64_t k : grid_stride_range(total)) {
    const int64_t i = k / m;
    const int64_t j = k - i * m;
    const auto a = math::load_box<A>(boxes1 + 4 * i);
    const auto b = math::load_box<A>(boxes2 + 4 * j);
    out[k] = static_cast<T>(math::pairwise_iou_variant<V>(a, math::box_terms(a, V), b, math::box_terms(b, V), eps));
  }
}

template <IoUVariant V, typename T>
__global__ void loss_kernel(const T* __restrict__ b1, const T* __restrict__ b2, int64_t n, acc_t<T> eps, bool reduce,
                            T* __restrict__ loss, acc_t<T>* __restrict__ partials) {
  using A = acc_t<T>;
  A sum = A(0);
  for (const int64_t k : grid_stride_range(n)) {
    const A l =
        math::box_iou_loss_term<V, false>(math::load_box<A>(b1 + 4 * k), math::load_box<A>(b2 + 4 * k), eps).loss;
    if (reduce) {
      sum += l;
    } else {
      loss[k] = static_cast<T>(l);
    }
  }
  if (reduce) {
    sum = block_sum(sum);
    if (threadIdx.x == 0) partials[blockIdx.x] = sum;
  }
}

template <typename T>
__global__ void finish_kernel(const acc_t<T>* __restrict__ partials, int num_partials, int64_t n, bool mean,
                              T* __restrict__ loss) {
  using A = acc_t<T>;
  A sum = A(0);
  for (int i = threadIdx.x; i < num_partials; i += blockDim.x) sum += partials[i];
  sum = block_sum(sum);
  if (threadIdx.x != 0) return;
  if (mean) sum = n > 0 ? A(double(sum) / double(n)) : A(0);
  *loss = static_cast<T>(sum);
}

template <typename T>
__device__ void store(T* p, const math::Box<acc_t<T>>& b, acc_t<T> scale) {
  p[0] = static_cast<T>(b.x1 * scale);
  p[1] = static_cast<T>(b.y1 * scale);
  p[2] = static_cast<T>(b.x2 * scale);
  p[3] = static_cast<T>(b.y2 * scale);
}

template <IoUVariant V, typename T>
__global__ void backward_kernel(const T* __restrict__ b1, const T* __restrict__ b2, int64_t n, acc_t<T> eps,
                                const T* __restrict__ grad_loss, bool per_pair, bool mean, T* __restrict__ grad1,
                                T* __restrict__ grad2) {
  using A = acc_t<T>;
  A shared = per_pair ? A(0) : static_cast<A>(grad_loss[0]);
  if (mean) shared = A(double(shared) / double(n));
  for (const int64_t k : grid_stride_range(n)) {
    const auto term =
        math::box_iou_loss_term<V, true>(math::load_box<A>(b1 + 4 * k), math::load_box<A>(b2 + 4 * k), eps);
    const A g = per_pair ? static_cast<A>(grad_loss[k]) : shared;
    store(grad1 + 4 * k, term.grad1, g);
    store(grad2 + 4 * k, term.grad2, g);
  }
}

// Calls fn.template operator()<V>() for the runtime variant.
template <typename Fn>
void with_variant(IoUVariant variant, Fn&& fn) {
  switch (variant) {
    case IoUVariant::Generalized: fn(std::integral_constant<IoUVariant, IoUVariant::Generalized>{}); break;
    case IoUVariant::Distance: fn(std::integral_constant<IoUVariant, IoUVariant::Distance>{}); break;
    case IoUVariant::Complete: fn(std::integral_constant<IoUVariant, IoUVariant::Complete>{}); break;
  }
}

}  // namespace

int64_t box_iou_loss_workspace_bytes(int64_t n) {
  (void)n;
  return int64_t{8} * kReduceBlocks;
}

void pairwise_box_iou(const PairwiseIoUParams& params, const TensorRef& boxes1, const TensorRef& boxes2,
                      const TensorRef& out, Stream stream) {
  DeviceGuard guard(boxes1);
  const int64_t n = boxes1.size(0), m = boxes2.size(0);
  DETCORE_DISPATCH_CUDA_FLOATING(boxes1.dtype, "pairwise_box_iou", [&] {
    using A = acc_t<scalar_t>;
    with_variant(params.variant, [&](auto v) {
      pairwise_kernel<decltype(v)::value, scalar_t><<<blocks_for(n * m), kThreadsPerBlock, 0, as_cuda_stream(stream)>>>(
          boxes1.ptr<const scalar_t>(), boxes2.ptr<const scalar_t>(), n, m, static_cast<A>(params.eps),
          out.ptr<scalar_t>());
    });
  });
  check_launch("pairwise_box_iou");
}

void box_iou_loss_forward(const BoxIoULossParams& params, const TensorRef& boxes1, const TensorRef& boxes2,
                          const TensorRef& loss, const TensorRef* workspace, Stream stream) {
  DeviceGuard guard(boxes1);
  const int64_t n = boxes1.size(0);
  const bool reduce = params.reduction != Reduction::None;
  const cudaStream_t s = as_cuda_stream(stream);
  DETCORE_DISPATCH_CUDA_FLOATING(boxes1.dtype, "box_iou_loss", [&] {
    using A = acc_t<scalar_t>;
    A* partials = reduce ? workspace->ptr<A>() : nullptr;
    const unsigned int blocks = reduce ? std::min<unsigned int>(blocks_for(n), kReduceBlocks) : blocks_for(n);
    if (n > 0) {
      with_variant(params.variant, [&](auto v) {
        loss_kernel<decltype(v)::value, scalar_t><<<blocks, kThreadsPerBlock, 0, s>>>(
            boxes1.ptr<const scalar_t>(), boxes2.ptr<const scalar_t>(), n, static_cast<A>(params.eps), reduce,
            reduce ? nullptr : loss.ptr<scalar_t>(), partials);
      });
      check_launch("box_iou_loss");
    }
    if (reduce) {
      finish_kernel<scalar_t><<<1, kFinalThreads, 0, s>>>(partials, n > 0 ? int(blocks) : 0, n,
                                                          params.reduction == Reduction::Mean, loss.ptr<scalar_t>());
      check_launch("box_iou_loss");
    }
  });
}

void box_iou_loss_backward(const BoxIoULossParams& params, const TensorRef& boxes1, const TensorRef& boxes2,
                           const TensorRef& grad_loss, const TensorRef& grad1, const TensorRef& grad2, Stream stream) {
  DeviceGuard guard(boxes1);
  const int64_t n = boxes1.size(0);
  DETCORE_DISPATCH_CUDA_FLOATING(boxes1.dtype, "box_iou_loss_backward", [&] {
    using A = acc_t<scalar_t>;
    with_variant(params.variant, [&](auto v) {
      backward_kernel<decltype(v)::value, scalar_t><<<blocks_for(n), kThreadsPerBlock, 0, as_cuda_stream(stream)>>>(
          boxes1.ptr<const scalar_t>(), boxes2.ptr<const scalar_t>(), n, static_cast<A>(params.eps),
          grad_loss.ptr<const scalar_t>(), params.reduction == Reduction::None, params.reduction == Reduction::Mean,
          grad1.ptr<scalar_t>(), grad2.ptr<scalar_t>());
    });
  });
  check_launch("box_iou_loss_backward");
}

}  // namespace detcore::cuda
