#include "checks.h"

#include <cmath>
#include <cstdint>

namespace detcore::check {

void ndim(const TensorRef& t, const char* name, int expected, const char* layout) {
  if (t.ndim != expected) {
    throw_value_error(name, ": expected a ", expected, "-D array of shape ", layout, ", got shape ", t.shape_string());
  }
}

void matrix(const TensorRef& t, const char* name, int64_t last, const char* layout) {
  if (t.ndim != 2 || t.shape[1] != last) {
    throw_value_error(name, ": expected an array of shape ", layout, ", got shape ", t.shape_string());
  }
}

void shape(const TensorRef& t, const char* name, std::initializer_list<int64_t> expected) {
  bool ok = t.ndim == static_cast<int>(expected.size());
  int d = 0;
  for (int64_t size : expected) {
    if (ok && t.shape[d] != size) ok = false;
    ++d;
  }
  if (!ok) {
    TensorRef wanted;
    wanted.ndim = static_cast<int>(expected.size());
    d = 0;
    for (int64_t size : expected) wanted.shape[d++] = size;
    throw_value_error(name, ": expected shape ", wanted.shape_string(), ", got shape ", t.shape_string());
  }
}

void dtype(const TensorRef& t, const char* name, DType expected) {
  if (t.dtype != expected) {
    throw_type_error(name, ": expected dtype ", dtype_name(expected), ", got ", dtype_name(t.dtype));
  }
}

void floating(const TensorRef& t, const char* name) {
  if (!is_floating(t.dtype)) {
    throw_type_error(name, ": expected a floating dtype (float32, float64, float16 or bfloat16), got ",
                     dtype_name(t.dtype));
  }
}

void floating_half_on_cuda(const TensorRef& t, const char* name) {
  const bool cpu_ok = t.dtype == DType::Float32 || t.dtype == DType::Float64;
  const bool cuda_ok = t.is_cuda() && (t.dtype == DType::Float16 || t.dtype == DType::BFloat16);
  if (!cpu_ok && !cuda_ok) {
    throw_type_error(name, ": expected a floating dtype (float32 or float64",
                     t.is_cuda() ? ", float16, bfloat16" : "; float16 and bfloat16 on CUDA only", "), got ",
                     dtype_name(t.dtype), " on ", device_name(t.device));
  }
}

void same_dtype(const TensorRef& a, const char* a_name, const TensorRef& b, const char* b_name) {
  if (a.dtype != b.dtype) {
    throw_type_error(b_name, ": expected the dtype of ", a_name, " (", dtype_name(a.dtype), "), got ",
                     dtype_name(b.dtype));
  }
}

void same_device(const TensorRef& a, const char* a_name, const TensorRef& b, const char* b_name) {
  if (a.device != b.device) {
    throw_value_error(b_name, ": expected the device of ", a_name, " (", device_name(a.device), "), got ",
                      device_name(b.device));
  }
}

void data(const TensorRef& t, const char* name) {
  if (t.data == nullptr && t.numel() != 0) throw_value_error(name, ": null data pointer for a non-empty array");
}

void aligned(const TensorRef& t, const char* name) {
  if (t.numel() != 0 && reinterpret_cast<uintptr_t>(t.data) % 16 != 0) {
    throw_value_error(name, ": expected memory aligned to 16 bytes (a fresh allocation), got address ", t.data);
  }
}

void non_negative(double value, const char* name) {
  if (!(value >= 0.0) || !std::isfinite(value)) {
    throw_value_error(name, ": expected a finite number >= 0, got ", value);
  }
}

void positive(int64_t value, const char* name) {
  if (value <= 0) throw_value_error(name, ": expected a positive integer, got ", value);
}

}  // namespace detcore::check
