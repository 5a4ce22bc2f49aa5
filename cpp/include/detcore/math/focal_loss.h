// The sigmoid focal loss of one logit and its derivative, shared by the CPU
// and CUDA kernels (RetinaNet, https://arxiv.org/abs/1708.02002):
//
//   p   = sigmoid(x),  q = 1 - p = sigmoid(-x)
//   ce  = BCE-with-logits(x, t) = max(x, 0) - x t + log1p(exp(-|x|))
//   m   = 1 - p_t = p (1 - t) + q t            (the modulating base)
//   w   = alpha t + (1 - alpha)(1 - t)          (1 when alpha < 0)
//   FL  = w ce m^gamma
//
//   dFL/dx = w [ (p - t) m^gamma + ce gamma m^(gamma-1) p q (1 - 2t) ]
//
// Numerics:
// * One exp(-|x|) gives p, q and the log term, so nothing overflows and no
//   log(0) appears for any |x| (+-1e4 included); q is computed directly rather
//   than as 1 - p, so m keeps its precision where p_t is close to 1.
// * gamma m^(gamma-1) is infinite at m = 0 for gamma < 1. It is always used
//   multiplied by p q, and for targets in [0, 1] m >= min(p, q) >= p q, so the
//   product is evaluated as gamma m^gamma (p q / m), whose last factor is
//   bounded by 1. At m == 0 (p_t == 1 to working precision) p q is 0 too and
//   the division uses a nonzero divisor, so the term is its limit, 0, for
//   every gamma > 0; gamma == 0 has no modulating term at all. The gradient
//   is therefore never NaN for finite logits.
// * A NaN logit gives a NaN loss and a NaN gradient, nothing worse.
// * float: exp(-|x|), log1p and m^gamma (gamma not 0, 1, 2) use the
//   branch-free polynomials below (the loss is within ~10 ulp of the exact
//   one), so the CPU loop vectorizes and the GPU runs the very same
//   arithmetic; exp(-|x|) saturates at 1.2e-38 below -87.3 (where expf would
//   be subnormal): an absolute change of p, q and ce below 1.2e-38.
//   double uses the C library's exp, log1p and pow.
#pragma once

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "detcore/macros.h"

namespace detcore::math {

DETCORE_HOST_DEVICE float float_from_bits(uint32_t bits) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(bits);
#else
  float f;
  memcpy(&f, &bits, sizeof f);
  return f;
#endif
}

DETCORE_HOST_DEVICE uint32_t bits_of(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t bits;
  memcpy(&bits, &f, sizeof bits);
  return bits;
#endif
}

// exp(v) for v <= 0 (sign bit set): v = n ln2 + r with |r| <= ln2 / 2 (ln2 split in two
// parts so n ln2 is exact), e^r by its Taylor polynomial of degree 7
// (truncation < 6e-9), times 2^n built in the exponent bits. Saturates at
// exp(-87.3) ~ 1.2e-38, the smallest normal float, for smaller v (no
// subnormals; a zero result would need a branch the compilers keep).
DETCORE_HOST_DEVICE float exp_nonpositive(float v) {
  constexpr float kMin = -87.3f;         // below: expf is subnormal; saturate
  constexpr float kRound = 12582912.0f;  // 1.5 * 2^23: v + kRound rounds v to an integer
  // max(v, kMin) on the bits: for v <= 0 a larger magnitude has larger
  // (signed) bits. Written as a mask, not a select, so compilers keep the loop
  // branch-free (a select of the constant gets threaded into a branch). NaN
  // becomes kMin here; the callers carry NaN through other terms.
  const int64_t over = int64_t(int32_t(bits_of(v))) - int64_t(int32_t(bits_of(kMin)));
  const int64_t keep_v = over >> 63;  // all ones where v > kMin
  const float clamped = float_from_bits(uint32_t(int64_t(int32_t(bits_of(kMin))) + (over & keep_v)));
  const float shifted = clamped * 1.44269504f + kRound;
  const uint32_t n_bits = bits_of(shifted) - bits_of(kRound);  // n mod 2^32, n in [-126, 0]
  const float n = shifted - kRound;
  const float r = (clamped - n * 0.693359375f) - n * -2.12194440e-4f;
  float poly = 1.0f / 5040.0f;
  poly = poly * r + 1.0f / 720.0f;
  poly = poly * r + 1.0f / 120.0f;
  poly = poly * r + 1.0f / 24.0f;
  poly = poly * r + 1.0f / 6.0f;
  poly = poly * r + 0.5f;
  poly = poly * r + 1.0f;
  poly = poly * r + 1.0f;
  const float scale = float_from_bits((n_bits + 127u) << 23);
  return poly * scale;
}

// log1p(e) for e in [0, 1] as 2 atanh(s), s = e / (2 + e) in [0, 1/3]: the
// odd series up to s^15 (truncation < 2e-9 relative), accurate for tiny e.
DETCORE_HOST_DEVICE float log1p_unit(float e) {
  const float s = e / (2.0f + e);
  const float s2 = s * s;
  float poly = 1.0f / 15.0f;
  poly = poly * s2 + 1.0f / 13.0f;
  poly = poly * s2 + 1.0f / 11.0f;
  poly = poly * s2 + 1.0f / 9.0f;
  poly = poly * s2 + 1.0f / 7.0f;
  poly = poly * s2 + 1.0f / 5.0f;
  poly = poly * s2 + 1.0f / 3.0f;
  poly = poly * s2 + 1.0f;
  return 2.0f * s * poly;
}

// max(m, smallest normal float) for m >= 0, on the bits (larger positive
// floats have larger bits), as a mask for the same reason as in
// exp_nonpositive.
DETCORE_HOST_DEVICE float at_least_normal(float m) {
  constexpr float kMinNormal = 1.17549435e-38f;
  const int64_t below = int64_t(int32_t(bits_of(m))) - int64_t(int32_t(bits_of(kMinNormal)));
  return float_from_bits(uint32_t(int64_t(int32_t(bits_of(m))) - (below & (below >> 63))));
}
// A divisor for p q / m that is never 0; p q <= m, so p q / divisor is 0
// where m is 0.
DETCORE_HOST_DEVICE float nonzero_divisor(float m) { return at_least_normal(m); }
DETCORE_HOST_DEVICE double nonzero_divisor(double m) { return m > 0.0 ? m : 1.0; }

// log(m) for m in (0, 1]: m = 2^k f with f in [sqrt(1/2), sqrt(2)) taken from
// the bits, log f = 2 atanh(s), s = (f - 1) / (f + 1), |s| < 0.172, by its odd
// series up to s^11 (truncation < 1e-10). m below the smallest normal float
// (0 included) is raised to it, so the result is >= -87.34 and finite.
DETCORE_HOST_DEVICE float log_unit(float m) {
  const int32_t m_bits = static_cast<int32_t>(bits_of(at_least_normal(m)));
  const int32_t k = (m_bits - int32_t(0x3f3504f3)) >> 23;  // 0x3f3504f3: sqrt(1/2)
  const float f = float_from_bits(uint32_t(m_bits - k * (1 << 23)));
  const float s = (f - 1.0f) / (f + 1.0f);
  const float s2 = s * s;
  float poly = 1.0f / 11.0f;
  poly = poly * s2 + 1.0f / 9.0f;
  poly = poly * s2 + 1.0f / 7.0f;
  poly = poly * s2 + 1.0f / 5.0f;
  poly = poly * s2 + 1.0f / 3.0f;
  poly = poly * s2 + 1.0f;
  const float kf = static_cast<float>(k);
  return kf * 0.693359375f + (kf * -2.12194440e-4f + 2.0f * s * poly);
}

// m^g for m in (0, 1] and g > 0 as exp(g log m); within ~1e-7 |g log m|
// relative (a few ulp for the m that matter, 4e-6 g at m ~ 1e-38).
DETCORE_HOST_DEVICE float pow_unit(float m, float g) { return exp_nonpositive(-fabsf(g * log_unit(m))); }

// exp(-|v|); the float one sets the sign bit (-0 for +-0, as the clamp needs).
DETCORE_HOST_DEVICE float exp_neg_abs(float v) { return exp_nonpositive(float_from_bits(bits_of(v) | 0x80000000u)); }
DETCORE_HOST_DEVICE double exp_neg_abs(double v) { return exp(-fabs(v)); }
DETCORE_HOST_DEVICE float log1p_of_unit(float e) { return log1p_unit(e); }
DETCORE_HOST_DEVICE double log1p_of_unit(double e) { return log1p(e); }
DETCORE_HOST_DEVICE float pow_of_unit(float b, float e) { return pow_unit(b, e); }
DETCORE_HOST_DEVICE double pow_of_unit(double b, double e) { return pow(b, e); }

// The exponents worth their own code path (pow is slow; RetinaNet uses 2).
enum class GammaKind { Zero, One, Two, Other };

DETCORE_HOST_DEVICE GammaKind gamma_kind(double gamma) {
  return gamma == 0.0   ? GammaKind::Zero
         : gamma == 1.0 ? GammaKind::One
         : gamma == 2.0 ? GammaKind::Two
                        : GammaKind::Other;
}

// The per-call constants, converted once to the accumulation type T.
template <typename T>
struct FocalParams {
  T alpha_pos;  // weight of a positive target: alpha, or 1 when alpha < 0
  T alpha_neg;  // weight of a negative target: 1 - alpha, or 1 when alpha < 0
  T gamma;      // >= 0
};

template <typename T>
DETCORE_HOST_DEVICE FocalParams<T> make_focal_params(double alpha, double gamma) {
  const bool weighted = alpha >= 0.0;
  return {static_cast<T>(weighted ? alpha : 1.0), static_cast<T>(weighted ? 1.0 - alpha : 1.0), static_cast<T>(gamma)};
}

template <typename T>
struct FocalTerm {
  T loss;
  T dloss_dx;  // 0 unless requested
};

// m^gamma; 0^0 is 1, as in torch.
template <GammaKind G, typename T>
DETCORE_HOST_DEVICE T focal_modulation(T m, T gamma) {
  if constexpr (G == GammaKind::Zero) return T(1);
  if constexpr (G == GammaKind::One) return m;
  if constexpr (G == GammaKind::Two) return m * m;
  if constexpr (G == GammaKind::Other) return pow_of_unit(m, gamma);
}

// gamma m^(gamma-1) p q: the derivative of m^gamma with respect to x, up to
// the factor (1 - 2t). See the header comment for why it is finite.
template <GammaKind G, typename T>
DETCORE_HOST_DEVICE T focal_modulation_slope(T m, T modulation, T gamma, T pq) {
  if constexpr (G == GammaKind::Zero) return T(0);
  if constexpr (G == GammaKind::One) return pq;
  if constexpr (G == GammaKind::Two) return T(2) * m * pq;
  if constexpr (G == GammaKind::Other) return gamma * modulation * (pq / nonzero_divisor(m));
}

// The focal loss of logit x against target t (0 / 1, or soft in [0, 1]) and,
// when kWithGrad, its derivative with respect to x. G must be
// gamma_kind(params.gamma).
template <GammaKind G, bool kWithGrad, typename T>
DETCORE_HOST_DEVICE FocalTerm<T> sigmoid_focal_term(T x, T t, const FocalParams<T>& params) {
  const T e = exp_neg_abs(x);       // exp(-|x|) in [0, 1]
  const T big = T(1) / (T(1) + e);  // sigmoid(|x|)
  const T small = e * big;          // sigmoid(-|x|)
  const bool positive = x >= T(0);
  const T p = positive ? big : small;
  const T q = positive ? small : big;
  const T ce = (positive ? x : T(0)) - x * t + log1p_of_unit(e);
  const T m = p * (T(1) - t) + q * t;
  const T modulation = focal_modulation<G>(m, params.gamma);
  // alpha t + (1 - alpha)(1 - t); t + (1 - t) == 1 exactly for t in [0, 1].
  const T w = params.alpha_pos * t + params.alpha_neg * (T(1) - t);
  FocalTerm<T> out{w * ce * modulation, T(0)};
  if constexpr (kWithGrad) {
    const T slope = focal_modulation_slope<G>(m, modulation, params.gamma, p * q);
    out.dloss_dx = w * ((p - t) * modulation + ce * slope * (T(1) - T(2) * t));
  }
  return out;
}

}  // namespace detcore::math
