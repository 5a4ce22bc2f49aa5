// Dtype and device dispatch used by every op entry point.
#pragma once

#include "detcore/errors.h"
#include "detcore/tensor.h"

// One case of a dtype switch: runs the lambda `...` with `scalar_t` bound to
// `type`. The CPU and the CUDA dispatchers are both made of these cases.
#define DETCORE_DTYPE_CASE(enum_value, type, ...) \
  case ::detcore::DType::enum_value: {            \
    using scalar_t = type;                        \
    __VA_ARGS__();                                \
    break;                                        \
  }

// The default of a dtype switch.
#define DETCORE_DTYPE_UNSUPPORTED(dtype, op_name) \
  default: ::detcore::throw_type_error(op_name, ": unsupported dtype ", ::detcore::dtype_name(dtype));

// Calls the lambda `...` with `scalar_t` bound to the C++ type of `dtype`:
// float or double (the CPU kernels; float16 and bfloat16 reach them widened
// to float, see cpu/float_staging.h). The CUDA dispatcher, with the half
// types too, is DETCORE_DISPATCH_CUDA_FLOATING in cuda/common.cuh.
#define DETCORE_DISPATCH_FLOAT32_64(dtype, op_name, ...) \
  switch (dtype) {                                       \
    DETCORE_DTYPE_CASE(Float32, float, __VA_ARGS__)      \
    DETCORE_DTYPE_CASE(Float64, double, __VA_ARGS__)     \
    DETCORE_DTYPE_UNSUPPORTED(dtype, op_name)            \
  }

namespace detcore {
[[noreturn]] inline void throw_built_without_cuda(const char* op_name) {
  throw ValueError(std::string(op_name) +
                   ": got arrays on a CUDA device, but this build of detcore has no CUDA kernels "
                   "(rebuild with -DDETCORE_CUDA=ON and a CUDA toolkit)");
}
}  // namespace detcore

// Runs `cpu_call` or, for a tensor on a CUDA device, `cuda_call` (a statement
// each). Without CUDA kernels compiled in, CUDA tensors get a clear error.
#ifdef DETCORE_WITH_CUDA
#define DETCORE_DEVICE_DISPATCH(tensor, op_name, cpu_call, cuda_call) \
  do {                                                                \
    if ((tensor).is_cuda()) {                                         \
      cuda_call;                                                      \
    } else {                                                          \
      cpu_call;                                                       \
    }                                                                 \
  } while (0)
#else
#define DETCORE_DEVICE_DISPATCH(tensor, op_name, cpu_call, cuda_call) \
  do {                                                                \
    if ((tensor).is_cuda()) {                                         \
      ::detcore::throw_built_without_cuda(op_name);                   \
    } else {                                                          \
      cpu_call;                                                       \
    }                                                                 \
  } while (0)
#endif
