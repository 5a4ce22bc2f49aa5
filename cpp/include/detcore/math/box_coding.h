// Box coding shared by the CPU and CUDA kernels of encode_boxes and
// decode_boxes (and the gradient of decode_boxes).
//
// The parametrisation is Faster R-CNN's, with torchvision's arithmetic and
// its order (BoxCoder.encode_single / decode_single), so float32 results agree
// with torchvision to about one ulp (exp and log may differ by one ulp):
//   w = x2 - x1, cx = x1 + 0.5 * w (no +1),
//   encode: dx = wx * (gt_cx - cx) / w,  dw = ww * log(gt_w / w),
//   decode: cx' = (dx / wx) * w + cx,    w' = exp(min(dw / ww, clamp)) * w,
//           x1' = cx' - 0.5 * w',        x2' = cx' + 0.5 * w'.
// Each operation rounds on its own: on the device the products and sums use
// the _rn intrinsics so nvcc cannot contract them into FMAs.
#pragma once

#include <cmath>

#include "detcore/macros.h"
#include "detcore/math/box.h"

namespace detcore::math {

// (dx, dy, dw, dh) of one box.
template <typename T>
struct Deltas {
  T dx, dy, dw, dh;
};

template <typename T, typename S>
DETCORE_HOST_DEVICE Deltas<T> load_deltas(const S* p) {
  return {static_cast<T>(p[0]), static_cast<T>(p[1]), static_cast<T>(p[2]), static_cast<T>(p[3])};
}

// The weights (wx, wy, ww, wh) and the clamp of dw, dh, in the arithmetic type.
template <typename T>
struct BoxCoderParams {
  T wx, wy, ww, wh;
  T clamp;
};

namespace coding_detail {

DETCORE_HOST_DEVICE float mul(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
DETCORE_HOST_DEVICE double mul(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}
DETCORE_HOST_DEVICE float add(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}
DETCORE_HOST_DEVICE double add(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dadd_rn(a, b);
#else
  return a + b;
#endif
}
DETCORE_HOST_DEVICE float exp_of(float x) {
#if defined(__CUDA_ARCH__)
  return expf(x);
#else
  return std::exp(x);
#endif
}
DETCORE_HOST_DEVICE double exp_of(double x) {
#if defined(__CUDA_ARCH__)
  return ::exp(x);
#else
  return std::exp(x);
#endif
}
DETCORE_HOST_DEVICE float log_of(float x) {
#if defined(__CUDA_ARCH__)
  return logf(x);
#else
  return std::log(x);
#endif
}
DETCORE_HOST_DEVICE double log_of(double x) {
#if defined(__CUDA_ARCH__)
  return ::log(x);
#else
  return std::log(x);
#endif
}

}  // namespace coding_detail

// The deltas that take `proposal` to `reference` (torchvision's encode_boxes).
template <typename T>
DETCORE_HOST_DEVICE Deltas<T> encode_box(const Box<T>& reference, const Box<T>& proposal, const BoxCoderParams<T>& p) {
  using namespace coding_detail;
  const T half = T(0.5);
  const T ex_w = proposal.x2 - proposal.x1;
  const T ex_h = proposal.y2 - proposal.y1;
  const T ex_cx = add(proposal.x1, mul(half, ex_w));
  const T ex_cy = add(proposal.y1, mul(half, ex_h));
  const T gt_w = reference.x2 - reference.x1;
  const T gt_h = reference.y2 - reference.y1;
  const T gt_cx = add(reference.x1, mul(half, gt_w));
  const T gt_cy = add(reference.y1, mul(half, gt_h));
  return {mul(p.wx, gt_cx - ex_cx) / ex_w, mul(p.wy, gt_cy - ex_cy) / ex_h, mul(p.ww, log_of(gt_w / ex_w)),
          mul(p.wh, log_of(gt_h / ex_h))};
}

// The box that `d` takes `box` to (torchvision's decode_single). NaN deltas
// give NaN coordinates; huge dw, dh are clamped before exp.
template <typename T>
DETCORE_HOST_DEVICE Box<T> decode_box(const Deltas<T>& d, const Box<T>& box, const BoxCoderParams<T>& p) {
  using namespace coding_detail;
  const T half = T(0.5);
  const T w = box.x2 - box.x1;
  const T h = box.y2 - box.y1;
  const T cx = add(box.x1, mul(half, w));
  const T cy = add(box.y1, mul(half, h));
  const T dw = min_of(d.dw / p.ww, p.clamp);  // NaN stays NaN, as torch.clamp
  const T dh = min_of(d.dh / p.wh, p.clamp);
  const T pred_cx = add(mul(d.dx / p.wx, w), cx);
  const T pred_cy = add(mul(d.dy / p.wy, h), cy);
  const T half_w = mul(half, mul(exp_of(dw), w));
  const T half_h = mul(half, mul(exp_of(dh), h));
  return {pred_cx - half_w, pred_cy - half_h, pred_cx + half_w, pred_cy + half_h};
}

// The gradient of decode_box: given g = dL/d(decoded box), writes dL/d(d)
// to grad_d and adds dL/d(box) to grad_box. As torch.clamp, the clamp passes
// the gradient where dw <= clamp and blocks it above (and for NaN).
template <typename T>
DETCORE_HOST_DEVICE void decode_box_backward(const Box<T>& g, const Deltas<T>& d, const Box<T>& box,
                                             const BoxCoderParams<T>& p, Deltas<T>& grad_d, Box<T>& grad_box) {
  const T w = box.x2 - box.x1;
  const T h = box.y2 - box.y1;
  const T dx = d.dx / p.wx, dy = d.dy / p.wy;
  const T dw = d.dw / p.ww, dh = d.dh / p.wh;
  const T exp_w = coding_detail::exp_of(min_of(dw, p.clamp));
  const T exp_h = coding_detail::exp_of(min_of(dh, p.clamp));
  // x1' = cx' - w'/2 and x2' = cx' + w'/2: the centre gets g1 + g3, the width (g3 - g1) / 2.
  const T g_cx = g.x1 + g.x2, g_w = T(0.5) * (g.x2 - g.x1);
  const T g_cy = g.y1 + g.y2, g_h = T(0.5) * (g.y2 - g.y1);
  grad_d.dx = g_cx * w / p.wx;
  grad_d.dy = g_cy * h / p.wy;
  grad_d.dw = dw <= p.clamp ? g_w * exp_w * w / p.ww : T(0);
  grad_d.dh = dh <= p.clamp ? g_h * exp_h * h / p.wh : T(0);
  // cx' = dx * (x2 - x1) + (x1 + x2) / 2 and w' = exp(dw) * (x2 - x1).
  grad_box.x1 += g_cx * (T(0.5) - dx) - g_w * exp_w;
  grad_box.x2 += g_cx * (T(0.5) + dx) + g_w * exp_w;
  grad_box.y1 += g_cy * (T(0.5) - dy) - g_h * exp_h;
  grad_box.y2 += g_cy * (T(0.5) + dy) + g_h * exp_h;
}

}  // namespace detcore::math
