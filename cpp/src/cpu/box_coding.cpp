#include "backend/box_coding.h"

#include <algorithm>

#include "cpu/float_staging.h"
#include "detcore/math/box_coding.h"
#include "detcore/parallel.h"
#include "dispatch.h"

namespace detcore::cpu {
namespace {

constexpr int64_t kGrain = 4096;  // boxes per chunk: ~100 kB of traffic

template <typename T>
math::BoxCoderParams<T> params_of(const std::array<double, 4>& weights, double clamp) {
  return {static_cast<T>(weights[0]), static_cast<T>(weights[1]), static_cast<T>(weights[2]),
          static_cast<T>(weights[3]), static_cast<T>(clamp)};
}

template <typename T>
void encode_kernel(const T* reference, const T* proposals, int64_t n, math::BoxCoderParams<T> p, T* out) {
  parallel_for(n, kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const auto d = math::encode_box(math::load_box<T>(reference + 4 * i), math::load_box<T>(proposals + 4 * i), p);
      T* o = out + 4 * i;
      o[0] = d.dx, o[1] = d.dy, o[2] = d.dw, o[3] = d.dh;
    }
  });
}

// Element e of the (N, K) pairs decodes deltas[e] against boxes[e / K].
template <typename T>
void decode_kernel(const T* deltas, const T* boxes, int64_t n, int64_t k, math::BoxCoderParams<T> p, T* out) {
  parallel_for(n * k, kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t e = begin; e < end; ++e) {
      const auto b = math::decode_box(math::load_deltas<T>(deltas + 4 * e), math::load_box<T>(boxes + 4 * (e / k)), p);
      T* o = out + 4 * e;
      o[0] = b.x1, o[1] = b.y1, o[2] = b.x2, o[3] = b.y2;
    }
  });
}

// Per box: the K delta gradients, and the box gradient summed over K.
template <typename T>
void decode_backward_kernel(const T* grad_out, const T* deltas, const T* boxes, int64_t n, int64_t k,
                            math::BoxCoderParams<T> p, T* grad_deltas, T* grad_boxes) {
  const int64_t grain = std::max<int64_t>(1, kGrain / std::max<int64_t>(k, 1));
  parallel_for(n, grain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const auto box = math::load_box<T>(boxes + 4 * i);
      math::Box<T> grad_box{T(0), T(0), T(0), T(0)};
      for (int64_t j = 0; j < k; ++j) {
        const int64_t e = i * k + j;
        math::Deltas<T> grad_d;
        math::decode_box_backward(math::load_box<T>(grad_out + 4 * e), math::load_deltas<T>(deltas + 4 * e), box, p,
                                  grad_d, grad_box);
        T* g = grad_deltas + 4 * e;
        g[0] = grad_d.dx, g[1] = grad_d.dy, g[2] = grad_d.dw, g[3] = grad_d.dh;
      }
      T* gb = grad_boxes + 4 * i;
      gb[0] = grad_box.x1, gb[1] = grad_box.y1, gb[2] = grad_box.x2, gb[3] = grad_box.y2;
    }
  });
}

}  // namespace

void encode_boxes(const BoxCodingParams& params, const TensorRef& reference_boxes, const TensorRef& proposals,
                  const TensorRef& out) {
  if (is_half(out.dtype)) {
    FloatStaging staging;
    cpu::encode_boxes(params, staging.input(reference_boxes), staging.input(proposals), staging.output(out));
    staging.finish();
    return;
  }
  DETCORE_DISPATCH_FLOAT32_64(out.dtype, "encode_boxes", [&] {
    encode_kernel(reference_boxes.ptr<const scalar_t>(), proposals.ptr<const scalar_t>(), out.size(0),
                  params_of<scalar_t>(params.weights, 0.0), out.ptr<scalar_t>());
  });
}

void decode_boxes(const BoxCodingParams& params, const TensorRef& deltas, const TensorRef& boxes,
                  const TensorRef& out) {
  if (is_half(out.dtype)) {
    FloatStaging staging;
    cpu::decode_boxes(params, staging.input(deltas), staging.input(boxes), staging.output(out));
    staging.finish();
    return;
  }
  DETCORE_DISPATCH_FLOAT32_64(out.dtype, "decode_boxes", [&] {
    decode_kernel(deltas.ptr<const scalar_t>(), boxes.ptr<const scalar_t>(), deltas.size(0), deltas.size(1) / 4,
                  params_of<scalar_t>(params.weights, params.clamp), out.ptr<scalar_t>());
  });
}

void decode_boxes_backward(const BoxCodingParams& params, const TensorRef& grad_out, const TensorRef& deltas,
                           const TensorRef& boxes, const TensorRef& grad_deltas, const TensorRef& grad_boxes) {
  if (is_half(deltas.dtype)) {
    FloatStaging staging;
    cpu::decode_boxes_backward(params, staging.input(grad_out), staging.input(deltas), staging.input(boxes),
                               staging.output(grad_deltas), staging.output(grad_boxes));
    staging.finish();
    return;
  }
  DETCORE_DISPATCH_FLOAT32_64(deltas.dtype, "decode_boxes_backward", [&] {
    decode_backward_kernel(grad_out.ptr<const scalar_t>(), deltas.ptr<const scalar_t>(), boxes.ptr<const scalar_t>(),
                           deltas.size(0), deltas.size(1) / 4, params_of<scalar_t>(params.weights, params.clamp),
                           grad_deltas.ptr<scalar_t>(), grad_boxes.ptr<scalar_t>());
  });
}

}  // namespace detcore::cpu
