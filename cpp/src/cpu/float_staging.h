// float16 and bfloat16 on the CPU.
//
// The CPU kernels are written for float and double. A half-precision call
// runs the float kernel on float copies of its half inputs and writes float
// outputs, which are rounded (to nearest even) into the half outputs at the
// end: the arithmetic is float throughout, as on CUDA, and the result is the
// float32 result of the same (half) inputs, rounded once. The copies cost
// memory and time in proportion to the arrays; float32 and float64 calls do
// not go through here.
#pragma once

#include <cstdint>
#include <list>
#include <utility>
#include <vector>

#include "detcore/tensor.h"

namespace detcore::cpu {

inline bool is_half(DType dtype) { return dtype == DType::Float16 || dtype == DType::BFloat16; }

float half_to_float(uint16_t bits);
uint16_t float_to_half(float value);
float bfloat16_to_float(uint16_t bits);
uint16_t float_to_bfloat16(float value);

// Element i of a floating CPU tensor of any floating dtype, as double (for
// the few values an entry point checks, such as RoI batch indices).
double floating_element(const TensorRef& t, int64_t i);

// The float copies of one call. Usage:
//   FloatStaging staging;
//   kernel(staging.input(a), staging.output(out));
//   staging.finish();
class FloatStaging {
 public:
  // t itself unless it holds float16/bfloat16, else a float32 copy.
  TensorRef input(const TensorRef& t);
  // t itself unless it holds float16/bfloat16, else a float32 array of
  // zeros that finish() rounds into t.
  TensorRef output(const TensorRef& t);
  // Rounds every staged output into its half-precision tensor.
  void finish();

 private:
  TensorRef stage(const TensorRef& t);

  std::list<std::vector<float>> buffers_;
  std::vector<std::pair<TensorRef, TensorRef>> outputs_;  // (half tensor, float copy)
};

// Rounds float values to the storage of `dtype` (float16 or bfloat16).
void round_floats_to_half(const float* from, int64_t n, DType dtype, void* to);

}  // namespace detcore::cpu
