// Argument checks shared by every op entry point. Each throws ValueError or
// TypeError with the argument's name, what was expected and what was given,
// before any kernel can read or write out of bounds.
#pragma once

#include <cstdint>
#include <initializer_list>

#include "detcore/errors.h"
#include "detcore/tensor.h"

namespace detcore::check {

// t.ndim == ndim; `layout` describes the expected shape, e.g. "(N, 4)".
void ndim(const TensorRef& t, const char* name, int ndim, const char* layout);
// A (N, last) tensor, e.g. boxes with last == 4.
void matrix(const TensorRef& t, const char* name, int64_t last, const char* layout);
// t has exactly this shape (outputs and workspaces sized by the caller).
void shape(const TensorRef& t, const char* name, std::initializer_list<int64_t> expected);
void dtype(const TensorRef& t, const char* name, DType expected);
// float32, float64, float16 or bfloat16 (ops whose CPU kernels take the half
// types through cpu/float_staging.h).
void floating(const TensorRef& t, const char* name);
// float32/float64 everywhere, float16/bfloat16 on CUDA only.
void floating_half_on_cuda(const TensorRef& t, const char* name);
void same_dtype(const TensorRef& a, const char* a_name, const TensorRef& b, const char* b_name);
void same_device(const TensorRef& a, const char* a_name, const TensorRef& b, const char* b_name);
// Non-null data unless the tensor is empty.
void data(const TensorRef& t, const char* name);
// A workspace the kernels may view as any element type: its start is
// aligned to 16 bytes (what the allocators of numpy, torch and CUDA give).
void aligned(const TensorRef& t, const char* name);
// Finite and >= 0 (thresholds).
void non_negative(double value, const char* name);
void positive(int64_t value, const char* name);

}  // namespace detcore::check
