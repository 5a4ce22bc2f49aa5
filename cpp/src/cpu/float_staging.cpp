#include "cpu/float_staging.h"

#include <cstring>

#include "detcore/errors.h"
#include "detcore/parallel.h"

namespace detcore::cpu {
namespace {

uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  return u;
}

float float_of(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
}

constexpr int64_t kGrain = 1 << 15;

}  // namespace

float half_to_float(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  const uint32_t exponent = (h >> 10) & 0x1Fu;
  const uint32_t mantissa = h & 0x3FFu;
  if (exponent == 0) {
    // Zero or subnormal: mantissa * 2^-24, exact in float.
    return float_of(sign | bits_of(static_cast<float>(mantissa) * 5.9604644775390625e-8f));
  }
  if (exponent == 31) return float_of(sign | 0x7F800000u | (mantissa << 13));  // inf, NaN
  return float_of(sign | ((exponent + 112) << 23) | (mantissa << 13));
}

uint16_t float_to_half(float value) {
  // Round to nearest even, overflow to inf, NaN stays NaN (quiet).
  uint32_t x = bits_of(value);
  const uint32_t sign = x & 0x80000000u;
  x ^= sign;
  uint16_t h;
  if (x >= 0x47800000u) {  // |value| >= 65536, inf or NaN
    h = x > 0x7F800000u ? 0x7E00 : 0x7C00;
  } else if (x < 0x38800000u) {  // below float16's smallest normal, 2^-14
    // Adding 0.5 aligns the value's bits so that float addition's own
    // rounding (to nearest even) produces the subnormal mantissa.
    const float magic = float_of(126u << 23);
    h = static_cast<uint16_t>(bits_of(float_of(x) + magic) - (126u << 23));
  } else {
    const uint32_t odd = (x >> 13) & 1u;
    x += (uint32_t(15 - 127) << 23) + 0xFFFu + odd;
    h = static_cast<uint16_t>(x >> 13);
  }
  return static_cast<uint16_t>(h | (sign >> 16));
}

float bfloat16_to_float(uint16_t bits) { return float_of(uint32_t(bits) << 16); }

uint16_t float_to_bfloat16(float value) {
  const uint32_t x = bits_of(value);
  if ((x & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((x >> 16) | 0x40u);  // quiet NaN
  return static_cast<uint16_t>((x + 0x7FFFu + ((x >> 16) & 1u)) >> 16);
}

double floating_element(const TensorRef& t, int64_t i) {
  switch (t.dtype) {
    case DType::Float32: return t.ptr<const float>()[i];
    case DType::Float64: return t.ptr<const double>()[i];
    case DType::Float16: return half_to_float(t.ptr<const uint16_t>()[i]);
    case DType::BFloat16: return bfloat16_to_float(t.ptr<const uint16_t>()[i]);
    default: throw_type_error("expected a floating dtype, got ", dtype_name(t.dtype));
  }
}

void round_floats_to_half(const float* from, int64_t n, DType dtype, void* to) {
  auto* out = static_cast<uint16_t*>(to);
  const bool bf16 = dtype == DType::BFloat16;
  parallel_for(n, kGrain, [&](int64_t begin, int64_t end) {
    if (bf16) {
      for (int64_t i = begin; i < end; ++i) out[i] = float_to_bfloat16(from[i]);
    } else {
      for (int64_t i = begin; i < end; ++i) out[i] = float_to_half(from[i]);
    }
  });
}

TensorRef FloatStaging::stage(const TensorRef& t) {
  buffers_.emplace_back(static_cast<size_t>(t.numel()));
  TensorRef copy = t;
  copy.dtype = DType::Float32;
  copy.data = buffers_.back().data();
  return copy;
}

TensorRef FloatStaging::input(const TensorRef& t) {
  if (!is_half(t.dtype)) return t;
  TensorRef copy = stage(t);
  const auto* in = t.ptr<const uint16_t>();
  float* out = copy.ptr<float>();
  const bool bf16 = t.dtype == DType::BFloat16;
  parallel_for(t.numel(), kGrain, [&](int64_t begin, int64_t end) {
    if (bf16) {
      for (int64_t i = begin; i < end; ++i) out[i] = bfloat16_to_float(in[i]);
    } else {
      for (int64_t i = begin; i < end; ++i) out[i] = half_to_float(in[i]);
    }
  });
  return copy;
}

TensorRef FloatStaging::output(const TensorRef& t) {
  if (!is_half(t.dtype)) return t;
  TensorRef copy = stage(t);  // value-initialized: zeros
  outputs_.emplace_back(t, copy);
  return copy;
}

void FloatStaging::finish() {
  for (const auto& [half, staged] : outputs_) {
    round_floats_to_half(staged.ptr<const float>(), half.numel(), half.dtype, half.data);
  }
  outputs_.clear();
}

}  // namespace detcore::cpu
