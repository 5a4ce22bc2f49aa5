// Dtype and device dispatch used by every op entry point.
#pragma once

#include "detcore/errors.h"
#include "detcore/tensor.h"

// Calls the lambda `...` with `scalar_t` bound to the C++ type of `dtype`
// (float or double on the CPU).
#define DETCORE_DISPATCH_FLOAT32_64(dtype, op_name, ...)                                           \
  switch (dtype) {                                                                                 \
    case ::detcore::DType::Float32: {                                                              \
      using scalar_t = float;                                                                      \
      __VA_ARGS__();                                                                               \
      break;                                                                                       \
    }                                                                                              \
    case ::detcore::DType::Float64: {                                                              \
      using scalar_t = double;                                                                     \
      __VA_ARGS__();                                                                               \
      break;                                                                                       \
    }                                                                                              \
    default:                                                                                       \
      ::detcore::throw_type_error(op_name, ": unsupported dtype ", ::detcore::dtype_name(dtype)); \
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
