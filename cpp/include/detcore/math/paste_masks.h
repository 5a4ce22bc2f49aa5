// Per-pixel math of paste_masks, shared by the CPU and CUDA kernels.
//
// It follows torchvision's paste_masks_in_image (padding = 1) step by step:
//   1. the (Mh, Mw) mask is padded by one zero pixel on each side, and its box
//      is scaled about its centre by (M + 2) / M per axis (expand_boxes);
//   2. the expanded box is truncated to int64 (x0, y0, x1, y1); the padded
//      mask is resized to h = y1 - y0 + 1 rows and w = x1 - x0 + 1 columns
//      (at least 1 each) by bilinear interpolation with align_corners=False;
//   3. resized pixel (r, c) lands on image pixel (y0 + r, x0 + c), for the
//      image pixels in [x0, x1] x [y0, y1]; every other pixel is 0.
// The resize replicates ATen's CPU upsample_bilinear2d as built with FMA:
// source index fma(scale, dst + 0.5, -0.5) clamped at 0; then, for resized
// masks with h + w > 128, the separable kernel (fma(v0, w0, v1 * w1) along the
// width, then along the height), and for smaller ones the kernel ATen picks
// there, a sum of the four pixels times products of the weights. So float32
// and float64 results equal torchvision's bit for bit on x86-64 with FMA.
//
// The bicubic mode (PasteMode::Bicubic) changes step 2 only: the padded mask
// is resized with Keys' cubic convolution kernel, a = -0.75 (torch's and
// OpenCV's bicubic), at the same pixel centres (align_corners=False: output
// index d samples source coordinate (d + 0.5) * in / out - 0.5, not clamped);
// the four taps of each axis, floor(src) - 1 ... floor(src) + 2, are clamped
// to the padded mask (its border of zeros is repeated), as torch's
// upsample_bicubic2d does. The resize is separable: each padded row is resized
// along the width, then four such rows are combined along the height, in the
// accumulation type without FMA, so CPU and CUDA give the same bits; values
// may overshoot [0, 1] near sharp edges (the kernel has negative lobes), as
// F.interpolate(mode="bicubic") does.
//
// Boxes whose expanded coordinates include a NaN (any NaN or infinite input
// coordinate gives one) paste nothing. Expanded coordinates are clamped to
// +-2^40 before the integer cast, so huge boxes never overflow it.
#pragma once

#include <cmath>
#include <cstdint>

#include "detcore/macros.h"
#include "detcore/math/box.h"

namespace detcore::math {

// a * b rounded on its own, even where nvcc would fuse a product and a
// following add into an FMA (its default; the project builds with
// --fmad=false, and this keeps the header right without it): the host build
// (no -mfma) never fuses, and CPU and GPU must round the geometry alike.
template <typename T>
DETCORE_HOST_DEVICE T mul_rn(T a, T b) {
#if defined(__CUDA_ARCH__)
  if constexpr (sizeof(T) == sizeof(float)) {
    return __fmul_rn(a, b);
  } else {
    return __dmul_rn(a, b);
  }
#else
  return a * b;
#endif
}

// a * b + c with one rounding, on the host (libm) and the device alike.
template <typename T>
DETCORE_HOST_DEVICE T fused_mul_add(T a, T b, T c) {
#if defined(__CUDA_ARCH__)
  return fma(a, b, c);
#else
  return std::fma(a, b, c);
#endif
}

// Where one mask lands in the image.
struct PasteWindow {
  int64_t left = 0, top = 0;       // image pixel of resized mask pixel (0, 0)
  int64_t width = 1, height = 1;   // size of the resized mask, >= 1
  int64_t x_begin = 0, x_end = 0;  // covered image columns [x_begin, x_end)
  int64_t y_begin = 0, y_end = 0;  // covered image rows [y_begin, y_end)

  DETCORE_HOST_DEVICE bool covers(int64_t y, int64_t x) const {
    return y >= y_begin && y < y_end && x >= x_begin && x < x_end;
  }
};

// Beyond this, coordinates are clamped before the cast to int64 (which would
// be undefined behaviour for values out of its range).
constexpr double kPasteCoordinateLimit = 1099511627776.0;  // 2^40

template <typename T>
DETCORE_HOST_DEVICE int64_t truncate_coordinate(T v) {
  const T limit = static_cast<T>(kPasteCoordinateLimit);
  return static_cast<int64_t>(min_of(max_of(v, -limit), limit));
}

// The box scale of expand_masks: (M + 2) / M, computed in double as Python
// does and then rounded to T, as a tensor op with a Python float does.
template <typename T>
DETCORE_HOST_DEVICE T padded_scale(int64_t mask_side) {
  return static_cast<T>(static_cast<double>(mask_side + 2) / static_cast<double>(mask_side));
}

// `box` is the caller's (x1, y1, x2, y2) in T; scale_x, scale_y come from
// padded_scale for the mask's width and height.
template <typename T>
DETCORE_HOST_DEVICE PasteWindow paste_window(const Box<T>& box, T scale_x, T scale_y, int64_t image_h,
                                             int64_t image_w) {
  const T half = static_cast<T>(0.5);
  const T w_half = mul_rn(mul_rn(box.x2 - box.x1, half), scale_x);
  const T h_half = mul_rn(mul_rn(box.y2 - box.y1, half), scale_y);
  const T x_c = mul_rn(box.x2 + box.x1, half);
  const T y_c = mul_rn(box.y2 + box.y1, half);
  const T ex1 = x_c - w_half, ex2 = x_c + w_half;
  const T ey1 = y_c - h_half, ey2 = y_c + h_half;

  PasteWindow win;
  if (ex1 != ex1 || ex2 != ex2 || ey1 != ey1 || ey2 != ey2) return win;  // NaN: covers nothing
  const int64_t x0 = truncate_coordinate(ex1), x1 = truncate_coordinate(ex2);
  const int64_t y0 = truncate_coordinate(ey1), y1 = truncate_coordinate(ey2);
  win.left = x0;
  win.top = y0;
  win.width = max_of<int64_t>(x1 - x0 + 1, 1);
  win.height = max_of<int64_t>(y1 - y0 + 1, 1);
  win.x_begin = max_of<int64_t>(x0, 0);
  win.x_end = max_of(min_of(x1 + 1, image_w), win.x_begin);
  win.y_begin = max_of<int64_t>(y0, 0);
  win.y_end = max_of(min_of(y1 + 1, image_h), win.y_begin);
  return win;
}

// The two source pixels and their weights for one output index of an
// align_corners=False linear resize from in_size to out_size; A is the
// accumulation type (float for float/half/bfloat16, double for double).
template <typename A>
struct LinearTap {
  int64_t i0, i1;
  A w0, w1;
};

template <typename A>
DETCORE_HOST_DEVICE A resize_scale(int64_t in_size, int64_t out_size) {
  return static_cast<A>(in_size) / static_cast<A>(out_size);
}

template <typename A>
DETCORE_HOST_DEVICE LinearTap<A> linear_tap(A scale, int64_t dst, int64_t in_size, int64_t out_size) {
  if (in_size == out_size) return {dst, dst, A(1), A(0)};
  A src = fused_mul_add(scale, static_cast<A>(dst) + A(0.5), A(-0.5));
  if (src < A(0)) src = A(0);
  // ATen takes floorf of the index even in double; src >= 0, so truncation is floor.
  int64_t i0 = static_cast<int64_t>(static_cast<float>(src));
  if (i0 > in_size - 1) i0 = in_size - 1;
  const A lambda = min_of(max_of(src - static_cast<A>(i0), A(0)), A(1));
  return {i0, i0 + (i0 < in_size - 1 ? 1 : 0), A(1) - lambda, lambda};
}

// Pixel (r, c) of the mask padded by one zero on each side; r in [0, mh + 2),
// c in [0, mw + 2). `mask` points at the (mh, mw) mask.
template <typename A, typename S>
DETCORE_HOST_DEVICE A padded_pixel(const S* mask, int64_t mh, int64_t mw, int64_t r, int64_t c) {
  if (r < 1 || r > mh || c < 1 || c > mw) return A(0);
  return static_cast<A>(mask[(r - 1) * mw + (c - 1)]);
}

// v0 * w0 + v1 * w1 as ATen's FMA build computes it.
template <typename A>
DETCORE_HOST_DEVICE A lerp_pair(A v0, A w0, A v1, A w1) {
  return fused_mul_add(v0, w0, mul_rn(v1, w1));
}

// ATen's CPU resize takes its separable kernel for outputs with h + w > 128
// and its per-pixel four-weight kernel below that; they round differently.
DETCORE_HOST_DEVICE bool separable_resize(const PasteWindow& win) { return win.width + win.height > 128; }

// Row r of the padded mask resized along the width, at the column of tap tx
// (the separable kernel's first pass).
template <typename A, typename S>
DETCORE_HOST_DEVICE A resize_along_width(const S* mask, int64_t mh, int64_t mw, int64_t r, const LinearTap<A>& tx) {
  return lerp_pair(padded_pixel<A>(mask, mh, mw, r, tx.i0), tx.w0, padded_pixel<A>(mask, mh, mw, r, tx.i1), tx.w1);
}

// Rows ty.i0 and ty.i1 resized along the width, combined along the height
// (the separable kernel's second pass).
template <typename A>
DETCORE_HOST_DEVICE A resize_along_height(A row0, A row1, const LinearTap<A>& ty) {
  return lerp_pair(row0, ty.w0, row1, ty.w1);
}

// The resized padded mask at one pixel of a window whose separable_resize()
// is `separable`.
template <typename A, typename S>
DETCORE_HOST_DEVICE A resized_pixel(const S* mask, int64_t mh, int64_t mw, const LinearTap<A>& ty,
                                    const LinearTap<A>& tx, bool separable) {
  if (separable) {
    return resize_along_height(resize_along_width(mask, mh, mw, ty.i0, tx), resize_along_width(mask, mh, mw, ty.i1, tx),
                               ty);
  }
  const A v00 = padded_pixel<A>(mask, mh, mw, ty.i0, tx.i0);
  const A v01 = padded_pixel<A>(mask, mh, mw, ty.i0, tx.i1);
  const A v10 = padded_pixel<A>(mask, mh, mw, ty.i1, tx.i0);
  const A v11 = padded_pixel<A>(mask, mh, mw, ty.i1, tx.i1);
  const A sum = lerp_pair(v00, mul_rn(ty.w0, tx.w0), v01, mul_rn(ty.w0, tx.w1));
  return fused_mul_add(v11, mul_rn(ty.w1, tx.w1), fused_mul_add(v10, mul_rn(ty.w1, tx.w0), sum));
}

// --- Bicubic resize -------------------------------------------------------

// Keys' a of the cubic convolution kernel, as torch and OpenCV use.
constexpr double kCubicA = -0.75;

template <typename A>
DETCORE_HOST_DEVICE A floor_of(A v) {
#if defined(__CUDA_ARCH__)
  return floor(v);
#else
  return std::floor(v);
#endif
}

// The kernel at distance x in [0, 1]: ((a + 2) x - (a + 3)) x^2 + 1.
template <typename A>
DETCORE_HOST_DEVICE A cubic_weight_near(A x) {
  const A a = static_cast<A>(kCubicA);
  return mul_rn(mul_rn(mul_rn(a + A(2), x) - (a + A(3)), x), x) + A(1);
}

// The kernel at distance x in [1, 2]: ((a x - 5a) x + 8a) x - 4a.
template <typename A>
DETCORE_HOST_DEVICE A cubic_weight_far(A x) {
  const A a = static_cast<A>(kCubicA);
  return mul_rn(mul_rn(mul_rn(a, x) - mul_rn(A(5), a), x) + mul_rn(A(8), a), x) - mul_rn(A(4), a);
}

// The four source pixels (clamped to [0, in_size)) and weights of one output
// index of an align_corners=False cubic resize; scale is resize_scale().
template <typename A>
struct CubicTap {
  int64_t i[4];
  A w[4];
};

template <typename A>
DETCORE_HOST_DEVICE CubicTap<A> cubic_tap(A scale, int64_t dst, int64_t in_size) {
  const A src = mul_rn(scale, static_cast<A>(dst) + A(0.5)) - A(0.5);
  const A base = floor_of(src);
  const A t = src - base;
  const int64_t i0 = static_cast<int64_t>(base);
  CubicTap<A> tap;
  for (int k = 0; k < 4; ++k) tap.i[k] = min_of<int64_t>(max_of<int64_t>(i0 - 1 + k, 0), in_size - 1);
  tap.w[0] = cubic_weight_far(t + A(1));
  tap.w[1] = cubic_weight_near(t);
  tap.w[2] = cubic_weight_near(A(1) - t);
  tap.w[3] = cubic_weight_far(A(2) - t);
  return tap;
}

// v[0] w[0] + v[1] w[1] + v[2] w[2] + v[3] w[3], summed in that order.
template <typename A>
DETCORE_HOST_DEVICE A cubic_sum(A v0, A v1, A v2, A v3, const CubicTap<A>& tap) {
  return ((mul_rn(v0, tap.w[0]) + mul_rn(v1, tap.w[1])) + mul_rn(v2, tap.w[2])) + mul_rn(v3, tap.w[3]);
}

// Row r of the padded mask resized along the width, at the column of tap tx.
template <typename A, typename S>
DETCORE_HOST_DEVICE A cubic_along_width(const S* mask, int64_t mh, int64_t mw, int64_t r, const CubicTap<A>& tx) {
  return cubic_sum(padded_pixel<A>(mask, mh, mw, r, tx.i[0]), padded_pixel<A>(mask, mh, mw, r, tx.i[1]),
                   padded_pixel<A>(mask, mh, mw, r, tx.i[2]), padded_pixel<A>(mask, mh, mw, r, tx.i[3]), tx);
}

// The bicubically resized padded mask at one pixel: the four width-resized
// rows of ty combined along the height (what the CPU kernel computes from its
// cached rows).
template <typename A, typename S>
DETCORE_HOST_DEVICE A cubic_resized_pixel(const S* mask, int64_t mh, int64_t mw, const CubicTap<A>& ty,
                                          const CubicTap<A>& tx) {
  return cubic_sum(cubic_along_width(mask, mh, mw, ty.i[0], tx), cubic_along_width(mask, mh, mw, ty.i[1], tx),
                   cubic_along_width(mask, mh, mw, ty.i[2], tx), cubic_along_width(mask, mh, mw, ty.i[3], tx), ty);
}

}  // namespace detcore::math
