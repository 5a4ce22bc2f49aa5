// Launch helpers shared by the CUDA kernels: error checks, the device guard,
// the stream cast and dtype dispatch with the half types.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "detcore/errors.h"
#include "detcore/tensor.h"

namespace detcore::cuda {

inline void check_cuda(cudaError_t status, const char* what) {
  if (status != cudaSuccess) {
    throw RuntimeError(std::string(what) + ": CUDA error: " + cudaGetErrorString(status));
  }
}

// Call right after a launch: reports a bad launch configuration at once.
inline void check_launch(const char* op_name) { check_cuda(cudaGetLastError(), op_name); }

inline cudaStream_t as_cuda_stream(Stream stream) { return static_cast<cudaStream_t>(stream); }

// Makes the tensor's device current for the scope of a call.
class DeviceGuard {
 public:
  explicit DeviceGuard(const TensorRef& t) {
    check_cuda(cudaGetDevice(&previous_), "cudaGetDevice");
    if (previous_ != t.device.index) check_cuda(cudaSetDevice(t.device.index), "cudaSetDevice");
  }
  ~DeviceGuard() {
    int current = previous_;
    cudaGetDevice(&current);
    if (current != previous_) cudaSetDevice(previous_);
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = 0;
};

constexpr int kThreadsPerBlock = 256;

// Blocks for a grid-stride loop over n elements; capped so the grid size stays
// legal, the loop covers the rest.
inline unsigned int blocks_for(int64_t n, int threads = kThreadsPerBlock) {
  const int64_t blocks = (n + threads - 1) / threads;
  return static_cast<unsigned int>(std::min<int64_t>(std::max<int64_t>(blocks, 1), int64_t{1} << 20));
}

// Float accumulation for every storage type.
template <typename T>
struct Accumulate {
  using type = float;
};
template <>
struct Accumulate<double> {
  using type = double;
};
template <typename T>
using acc_t = typename Accumulate<T>::type;

}  // namespace detcore::cuda

// Calls the lambda `...` with `scalar_t` bound to float, double, __half or
// __nv_bfloat16.
#define DETCORE_DISPATCH_CUDA_FLOATING(dtype, op_name, ...)                                        \
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
    case ::detcore::DType::Float16: {                                                              \
      using scalar_t = __half;                                                                     \
      __VA_ARGS__();                                                                               \
      break;                                                                                       \
    }                                                                                              \
    case ::detcore::DType::BFloat16: {                                                             \
      using scalar_t = __nv_bfloat16;                                                              \
      __VA_ARGS__();                                                                               \
      break;                                                                                       \
    }                                                                                              \
    default:                                                                                       \
      ::detcore::throw_type_error(op_name, ": unsupported dtype ", ::detcore::dtype_name(dtype)); \
  }
