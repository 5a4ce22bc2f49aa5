// Generalized, distance and complete IoU, pairwise (matrices) and as paired
// losses with their derivatives, shared by the CPU and CUDA kernels.
//
// The formulas, and the order of their operations, are torchvision.ops':
// results agree with it to the last bit or two in the boxes' dtype.
//
// Pairwise (generalized_box_iou, distance_box_iou, complete_box_iou), with
// the intersection clamped at 0 as box_iou does:
//   giou = iou - (enclose_area - union) / enclose_area
//   diou = iou - center_distance^2 / (enclose_w^2 + enclose_h^2 + eps)
//   ciou = diou - alpha * v,  v = 4/pi^2 (atan(w1/h1) - atan(w2/h2))^2,
//          alpha = v / (1 - iou + v + eps)
//
// Losses of paired boxes (the *_box_iou_loss functions), whose intersection
// is 0 unless both overlaps are strictly positive, and whose IoU adds eps to
// the union:
//   giou_loss = 1 - (iou - (enclose_area - union) / (enclose_area + eps))
//   diou_loss = 1 - iou + center_distance^2 / (enclose_w^2 + enclose_h^2 + eps)
//   ciou_loss = diou_loss(eps = 1e-7) + alpha * v  (torchvision passes its eps
//               only to alpha), alpha = v / (1 - iou + v + eps), a constant
//               for the gradient as in torchvision (torch.no_grad()).
// The derivatives are those autograd takes through torchvision's code: min
// and max of equal values split the gradient in halves (torch.minimum /
// torch.maximum), and no gradient flows through a zero intersection.
#pragma once

#include <math.h>

#include "detcore/macros.h"
#include "detcore/math/box.h"

namespace detcore::math {

enum class IoUVariant : int { Generalized = 0, Distance = 1, Complete = 2 };

// 4 / pi^2, the weight of the aspect-ratio term v.
constexpr double kAspectWeight = 0.40528473456935108578;
// The eps torchvision's complete_box_iou_loss uses for its distance part.
constexpr double kDistanceLossEps = 1e-7;

template <typename T>
DETCORE_HOST_DEVICE T atan_of(T x) {
  return atan(x);
}
template <>
DETCORE_HOST_DEVICE float atan_of(float x) {
  return atanf(x);
}

// What the pairwise kernels compute once per box.
template <typename T>
struct BoxTerms {
  T area;
  T cx, cy;  // centre
  T aspect;  // atan(w / h), complete IoU only
};

template <typename T>
DETCORE_HOST_DEVICE BoxTerms<T> box_terms(const Box<T>& b, IoUVariant variant) {
  BoxTerms<T> t;
  t.area = area(b);
  t.cx = (b.x1 + b.x2) / T(2);
  t.cy = (b.y1 + b.y2) / T(2);
  t.aspect = variant == IoUVariant::Complete ? atan_of((b.x2 - b.x1) / (b.y2 - b.y1)) : T(0);
  return t;
}

// One element of generalized / distance / complete box IoU.
template <IoUVariant V, typename T>
DETCORE_HOST_DEVICE T pairwise_iou_variant(const Box<T>& a, const BoxTerms<T>& ta, const Box<T>& b,
                                           const BoxTerms<T>& tb, T eps) {
  const T inter = intersection(a, b);
  const T uni = ta.area + tb.area - inter;
  const T iou = inter / uni;
  const T ew = max_of(max_of(a.x2, b.x2) - min_of(a.x1, b.x1), T(0));
  const T eh = max_of(max_of(a.y2, b.y2) - min_of(a.y1, b.y1), T(0));
  if constexpr (V == IoUVariant::Generalized) {
    const T enclose = ew * eh;
    return iou - (enclose - uni) / enclose;
  } else {
    const T diag = ew * ew + eh * eh + eps;
    const T dx = ta.cx - tb.cx, dy = ta.cy - tb.cy;
    const T diou = iou - (dx * dx + dy * dy) / diag;
    if constexpr (V == IoUVariant::Distance) {
      return diou;
    } else {
      const T d = ta.aspect - tb.aspect;
      const T v = T(kAspectWeight) * (d * d);
      const T alpha = v / (T(1) - iou + v + eps);
      return diou - alpha * v;
    }
  }
}

// d min(a, b) / da as torch.minimum's backward: 1, 0, or 1/2 on a tie.
template <typename T>
DETCORE_HOST_DEVICE T pick_min(T a, T b) {
  return a < b ? T(1) : (a == b ? T(0.5) : T(0));
}
template <typename T>
DETCORE_HOST_DEVICE T pick_max(T a, T b) {
  return a > b ? T(1) : (a == b ? T(0.5) : T(0));
}

template <typename T>
struct LossTerm {
  T loss;
  Box<T> grad1, grad2;  // d loss / d coordinates, when asked
};

// The loss of one pair of boxes p (boxes1) and g (boxes2) and, if kGrad, its
// derivatives with respect to both boxes' coordinates.
template <IoUVariant V, bool kGrad, typename T>
DETCORE_HOST_DEVICE LossTerm<T> box_iou_loss_term(const Box<T>& p, const Box<T>& g, T eps) {
  const T ix1 = max_of(p.x1, g.x1), iy1 = max_of(p.y1, g.y1);
  const T ix2 = min_of(p.x2, g.x2), iy2 = min_of(p.y2, g.y2);
  const bool overlap = iy2 > iy1 && ix2 > ix1;
  const T iw = ix2 - ix1, ih = iy2 - iy1;
  const T inter = overlap ? iw * ih : T(0);
  const T pw = p.x2 - p.x1, ph = p.y2 - p.y1, gw = g.x2 - g.x1, gh = g.y2 - g.y1;
  const T uni = pw * ph + gw * gh - inter;
  const T iou_eps = V == IoUVariant::Complete ? T(kDistanceLossEps) : eps;
  const T u = uni + iou_eps;
  const T iou = inter / u;
  const T ex1 = min_of(p.x1, g.x1), ey1 = min_of(p.y1, g.y1);
  const T ex2 = max_of(p.x2, g.x2), ey2 = max_of(p.y2, g.y2);
  const T ew = ex2 - ex1, eh = ey2 - ey1;

  LossTerm<T> out{};
  // Upstream gradients of the intermediates, filled by each variant.
  T g_iou = T(-1), g_union = T(0), g_ew = T(0), g_eh = T(0), g_dx = T(0), g_dy = T(0), g_aspect = T(0);
  T dx = T(0), dy = T(0);
  T rp = T(0), rg = T(0);
  if constexpr (V == IoUVariant::Generalized) {
    const T enclose = ew * eh;
    const T ec = enclose + eps;
    out.loss = T(1) - (iou - (enclose - uni) / ec);
    if constexpr (kGrad) {
      g_union = -T(1) / ec;
      const T g_enclose = T(1) / ec - (enclose - uni) / (ec * ec);
      g_ew = g_enclose * eh;
      g_eh = g_enclose * ew;
    }
  } else {
    const T diag_eps = V == IoUVariant::Complete ? T(kDistanceLossEps) : eps;
    const T diag = ew * ew + eh * eh + diag_eps;
    dx = (p.x2 + p.x1) / T(2) - (g.x1 + g.x2) / T(2);
    dy = (p.y2 + p.y1) / T(2) - (g.y1 + g.y2) / T(2);
    const T dist = dx * dx + dy * dy;
    out.loss = T(1) - iou + dist / diag;
    if constexpr (kGrad) {
      const T g_diag = -dist / (diag * diag);
      g_ew = g_diag * T(2) * ew;
      g_eh = g_diag * T(2) * eh;
      g_dx = T(2) * dx / diag;
      g_dy = T(2) * dy / diag;
    }
    if constexpr (V == IoUVariant::Complete) {
      rg = gw / gh;
      rp = pw / ph;
      const T d = atan_of(rg) - atan_of(rp);
      const T v = T(kAspectWeight) * (d * d);
      const T alpha = v / (T(1) - iou + v + eps);
      out.loss = out.loss + alpha * v;
      if constexpr (kGrad) g_aspect = alpha * T(kAspectWeight) * T(2) * d;  // d loss / d atan(rg)
    }
  }
  if constexpr (kGrad) {
    // iou = inter / (union + eps), union = area_p + area_g - inter.
    T g_inter = g_iou / u;
    g_union += -g_iou * inter / (u * u);
    g_inter -= g_union;
    Box<T>& d1 = out.grad1;
    Box<T>& d2 = out.grad2;
    d1 = {T(0), T(0), T(0), T(0)};
    d2 = d1;
    // Areas.
    d1.x2 += g_union * ph;
    d1.x1 -= g_union * ph;
    d1.y2 += g_union * pw;
    d1.y1 -= g_union * pw;
    d2.x2 += g_union * gh;
    d2.x1 -= g_union * gh;
    d2.y2 += g_union * gw;
    d2.y1 -= g_union * gw;
    // Intersection, through the max / min of the corners.
    if (overlap) {
      const T g_iw = g_inter * ih, g_ih = g_inter * iw;
      d1.x2 += g_iw * pick_min(p.x2, g.x2);
      d2.x2 += g_iw * pick_min(g.x2, p.x2);
      d1.x1 -= g_iw * pick_max(p.x1, g.x1);
      d2.x1 -= g_iw * pick_max(g.x1, p.x1);
      d1.y2 += g_ih * pick_min(p.y2, g.y2);
      d2.y2 += g_ih * pick_min(g.y2, p.y2);
      d1.y1 -= g_ih * pick_max(p.y1, g.y1);
      d2.y1 -= g_ih * pick_max(g.y1, p.y1);
    }
    // Enclosing box.
    d1.x2 += g_ew * pick_max(p.x2, g.x2);
    d2.x2 += g_ew * pick_max(g.x2, p.x2);
    d1.x1 -= g_ew * pick_min(p.x1, g.x1);
    d2.x1 -= g_ew * pick_min(g.x1, p.x1);
    d1.y2 += g_eh * pick_max(p.y2, g.y2);
    d2.y2 += g_eh * pick_max(g.y2, p.y2);
    d1.y1 -= g_eh * pick_min(p.y1, g.y1);
    d2.y1 -= g_eh * pick_min(g.y1, p.y1);
    // Centre distance: dx = (p.x1 + p.x2) / 2 - (g.x1 + g.x2) / 2.
    const T hx = g_dx / T(2), hy = g_dy / T(2);
    d1.x1 += hx;
    d1.x2 += hx;
    d2.x1 -= hx;
    d2.x2 -= hx;
    d1.y1 += hy;
    d1.y2 += hy;
    d2.y1 -= hy;
    d2.y2 -= hy;
    // Aspect term: d atan(w / h) = (dw / h - w dh / h^2) / (1 + (w / h)^2).
    if constexpr (V == IoUVariant::Complete) {
      const T sg = g_aspect / (T(1) + rg * rg), sp = -g_aspect / (T(1) + rp * rp);
      const T g_gw = sg / gh, g_gh = -sg * rg / gh;
      const T g_pw = sp / ph, g_ph = -sp * rp / ph;
      d2.x2 += g_gw;
      d2.x1 -= g_gw;
      d2.y2 += g_gh;
      d2.y1 -= g_gh;
      d1.x2 += g_pw;
      d1.x1 -= g_pw;
      d1.y2 += g_ph;
      d1.y1 -= g_ph;
    }
  }
  return out;
}

}  // namespace detcore::math
