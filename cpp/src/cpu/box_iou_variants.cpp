// CPU generalized / distance / complete IoU: the pairwise matrices and the
// paired losses with their gradients.
//
// Pairwise: the per-box terms of boxes2 (area, centre, aspect angle) are
// computed once into structure-of-arrays, so the inner loop over a row is
// branch-free and vectorizes; rows are spread over threads.
// Loss Sum / Mean are deterministic: fixed chunks summed in double, the chunk
// sums added in chunk order whatever the thread count.
#include "backend/box_iou_variants.h"

#include <algorithm>
#include <vector>

#include "detcore/parallel.h"
#include "dispatch.h"

namespace detcore::cpu {
namespace {

using math::Box;
using math::BoxTerms;

constexpr int64_t kChunk = 4096;  // pairs per loss chunk

template <typename T>
struct BoxesSoA {
  std::vector<T> x1, y1, x2, y2, area, cx, cy, aspect;
  BoxesSoA(const T* boxes, int64_t m, IoUVariant variant)
      : x1(m), y1(m), x2(m), y2(m), area(m), cx(m), cy(m), aspect(m) {
    for (int64_t j = 0; j < m; ++j) {
      const auto b = math::load_box<T>(boxes + 4 * j);
      const auto t = math::box_terms(b, variant);
      x1[j] = b.x1, y1[j] = b.y1, x2[j] = b.x2, y2[j] = b.y2;
      area[j] = t.area, cx[j] = t.cx, cy[j] = t.cy, aspect[j] = t.aspect;
    }
  }
};

template <IoUVariant V, typename T>
void pairwise_kernel(const T* boxes1, int64_t n, const T* boxes2, int64_t m, T eps, T* out) {
  const BoxesSoA<T> s(boxes2, m, V);
  const int64_t grain = m > 0 ? (16384 + m - 1) / m : n;
  parallel_for(n, grain, [&](int64_t begin, int64_t end) {
    const T* __restrict__ x1 = s.x1.data();
    const T* __restrict__ y1 = s.y1.data();
    const T* __restrict__ x2 = s.x2.data();
    const T* __restrict__ y2 = s.y2.data();
    const T* __restrict__ area = s.area.data();
    const T* __restrict__ cx = s.cx.data();
    const T* __restrict__ cy = s.cy.data();
    const T* __restrict__ aspect = s.aspect.data();
    for (int64_t i = begin; i < end; ++i) {
      const auto a = math::load_box<T>(boxes1 + 4 * i);
      const auto ta = math::box_terms(a, V);
      T* __restrict__ row = out + i * m;
      for (int64_t j = 0; j < m; ++j) {
        const Box<T> b{x1[j], y1[j], x2[j], y2[j]};
        const BoxTerms<T> tb{area[j], cx[j], cy[j], aspect[j]};
        row[j] = math::pairwise_iou_variant<V>(a, ta, b, tb, eps);
      }
    }
  });
}

template <typename T>
void pairwise(const PairwiseIoUParams& params, const TensorRef& boxes1, const TensorRef& boxes2, const TensorRef& out) {
  const T* b1 = boxes1.ptr<const T>();
  const T* b2 = boxes2.ptr<const T>();
  const int64_t n = boxes1.size(0), m = boxes2.size(0);
  const T eps = static_cast<T>(params.eps);
  switch (params.variant) {
    case IoUVariant::Generalized: pairwise_kernel<IoUVariant::Generalized>(b1, n, b2, m, eps, out.ptr<T>()); break;
    case IoUVariant::Distance: pairwise_kernel<IoUVariant::Distance>(b1, n, b2, m, eps, out.ptr<T>()); break;
    case IoUVariant::Complete: pairwise_kernel<IoUVariant::Complete>(b1, n, b2, m, eps, out.ptr<T>()); break;
  }
}

template <IoUVariant V, typename T>
void loss_forward_kernel(const BoxIoULossParams& params, const T* b1, const T* b2, int64_t n, T* loss) {
  const T eps = static_cast<T>(params.eps);
  const bool reduce = params.reduction != Reduction::None;
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<double> sums(reduce ? chunks : 0);
  parallel_for(chunks, 1, [&](int64_t first, int64_t last) {
    for (int64_t c = first; c < last; ++c) {
      const int64_t end = std::min(n, (c + 1) * kChunk);
      double sum = 0.0;
      for (int64_t k = c * kChunk; k < end; ++k) {
        const T l =
            math::box_iou_loss_term<V, false>(math::load_box<T>(b1 + 4 * k), math::load_box<T>(b2 + 4 * k), eps).loss;
        if (reduce) {
          sum += static_cast<double>(l);
        } else {
          loss[k] = l;
        }
      }
      if (reduce) sums[c] = sum;
    }
  });
  if (!reduce) return;
  double total = 0.0;
  for (double s : sums) total += s;
  if (params.reduction == Reduction::Mean) total = n > 0 ? total / static_cast<double>(n) : 0.0;
  loss[0] = static_cast<T>(total);
}

template <typename T>
void store(T* p, const Box<T>& b, T scale) {
  p[0] = b.x1 * scale;
  p[1] = b.y1 * scale;
  p[2] = b.x2 * scale;
  p[3] = b.y2 * scale;
}

template <IoUVariant V, typename T>
void loss_backward_kernel(const BoxIoULossParams& params, const T* b1, const T* b2, int64_t n, const T* grad_loss,
                          T* grad1, T* grad2) {
  const T eps = static_cast<T>(params.eps);
  const bool per_pair = params.reduction == Reduction::None;
  T shared = per_pair ? T(0) : grad_loss[0];
  if (params.reduction == Reduction::Mean) shared = static_cast<T>(static_cast<double>(shared) / n);
  parallel_for(n, kChunk, [&](int64_t begin, int64_t end) {
    for (int64_t k = begin; k < end; ++k) {
      const auto term =
          math::box_iou_loss_term<V, true>(math::load_box<T>(b1 + 4 * k), math::load_box<T>(b2 + 4 * k), eps);
      const T g = per_pair ? grad_loss[k] : shared;
      store(grad1 + 4 * k, term.grad1, g);
      store(grad2 + 4 * k, term.grad2, g);
    }
  });
}

template <typename T>
void loss_forward(const BoxIoULossParams& params, const TensorRef& boxes1, const TensorRef& boxes2,
                  const TensorRef& loss) {
  const T* b1 = boxes1.ptr<const T>();
  const T* b2 = boxes2.ptr<const T>();
  const int64_t n = boxes1.size(0);
  switch (params.variant) {
    case IoUVariant::Generalized: loss_forward_kernel<IoUVariant::Generalized>(params, b1, b2, n, loss.ptr<T>()); break;
    case IoUVariant::Distance: loss_forward_kernel<IoUVariant::Distance>(params, b1, b2, n, loss.ptr<T>()); break;
    case IoUVariant::Complete: loss_forward_kernel<IoUVariant::Complete>(params, b1, b2, n, loss.ptr<T>()); break;
  }
}

template <typename T>
void loss_backward(const BoxIoULossParams& params, const TensorRef& boxes1, const TensorRef& boxes2,
                   const TensorRef& grad_loss, const TensorRef& grad1, const TensorRef& grad2) {
  const T* b1 = boxes1.ptr<const T>();
  const T* b2 = boxes2.ptr<const T>();
  const T* g = grad_loss.ptr<const T>();
  const int64_t n = boxes1.size(0);
  T* g1 = grad1.ptr<T>();
  T* g2 = grad2.ptr<T>();
  switch (params.variant) {
    case IoUVariant::Generalized: loss_backward_kernel<IoUVariant::Generalized>(params, b1, b2, n, g, g1, g2); break;
    case IoUVariant::Distance: loss_backward_kernel<IoUVariant::Distance>(params, b1, b2, n, g, g1, g2); break;
    case IoUVariant::Complete: loss_backward_kernel<IoUVariant::Complete>(params, b1, b2, n, g, g1, g2); break;
  }
}

}  // namespace

void pairwise_box_iou(const PairwiseIoUParams& params, const TensorRef& boxes1, const TensorRef& boxes2,
                      const TensorRef& out) {
  DETCORE_DISPATCH_FLOAT32_64(boxes1.dtype, "pairwise_box_iou",
                              [&] { pairwise<scalar_t>(params, boxes1, boxes2, out); });
}

void box_iou_loss_forward(const BoxIoULossParams& params, const TensorRef& boxes1, const TensorRef& boxes2,
                          const TensorRef& loss) {
  DETCORE_DISPATCH_FLOAT32_64(boxes1.dtype, "box_iou_loss",
                              [&] { loss_forward<scalar_t>(params, boxes1, boxes2, loss); });
}

void box_iou_loss_backward(const BoxIoULossParams& params, const TensorRef& boxes1, const TensorRef& boxes2,
                           const TensorRef& grad_loss, const TensorRef& grad1, const TensorRef& grad2) {
  DETCORE_DISPATCH_FLOAT32_64(boxes1.dtype, "box_iou_loss_backward",
                              [&] { loss_backward<scalar_t>(params, boxes1, boxes2, grad_loss, grad1, grad2); });
}

}  // namespace detcore::cpu
