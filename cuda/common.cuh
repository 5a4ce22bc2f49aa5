// Launch helpers shared by the CUDA kernels: error checks, the device guard,
// the stream cast, float accumulation types and dtype dispatch with the half
// types. Launch geometry and grid-stride loops are in grid_stride.cuh.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "detcore/errors.h"
#include "detcore/tensor.h"
#include "dispatch.h"
#include "grid_stride.cuh"

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
// __nv_bfloat16 (the cases of the CPU dispatcher, plus the half types).
#define DETCORE_DISPATCH_CUDA_FLOATING(dtype, op_name, ...)  \
  switch (dtype) {                                           \
    DETCORE_DTYPE_CASE(Float32, float, __VA_ARGS__)          \
    DETCORE_DTYPE_CASE(Float64, double, __VA_ARGS__)         \
    DETCORE_DTYPE_CASE(Float16, __half, __VA_ARGS__)         \
    DETCORE_DTYPE_CASE(BFloat16, __nv_bfloat16, __VA_ARGS__) \
    DETCORE_DTYPE_UNSUPPORTED(dtype, op_name)                \
  }
