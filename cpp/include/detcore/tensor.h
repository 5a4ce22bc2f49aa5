// TensorRef: a non-owning view of a dense, C-contiguous array on one device.
// The core never allocates or frees the memory it points to; the caller (the
// Python layer, or a C++ user) owns it for the duration of the call.
#pragma once

#include <cstdint>
#include <string>

namespace detcore {

enum class DType : uint8_t { Float16, BFloat16, Float32, Float64, Int32, Int64, UInt8, Bool };

enum class DeviceKind : uint8_t { CPU, CUDA };

struct Device {
  DeviceKind kind = DeviceKind::CPU;
  int index = 0;
  bool operator==(const Device& other) const { return kind == other.kind && index == other.index; }
  bool operator!=(const Device& other) const { return !(*this == other); }
};

const char* dtype_name(DType dtype);
std::string device_name(Device device);
int64_t dtype_size(DType dtype);
inline bool is_floating(DType dtype) {
  return dtype == DType::Float16 || dtype == DType::BFloat16 || dtype == DType::Float32 || dtype == DType::Float64;
}

struct TensorRef {
  static constexpr int kMaxDims = 6;

  void* data = nullptr;
  DType dtype = DType::Float32;
  Device device{};
  int ndim = 0;
  int64_t shape[kMaxDims] = {0, 0, 0, 0, 0, 0};

  int64_t size(int dim) const { return shape[dim < 0 ? dim + ndim : dim]; }
  int64_t numel() const {
    int64_t n = 1;
    for (int d = 0; d < ndim; ++d) n *= shape[d];
    return n;
  }
  bool is_cuda() const { return device.kind == DeviceKind::CUDA; }
  template <typename T>
  T* ptr() const {
    return static_cast<T*>(data);
  }
  // "(3, 4)" for messages.
  std::string shape_string() const;
};

// A CUDA stream handle (cudaStream_t) or nullptr for the legacy default
// stream; ignored by CPU kernels.
using Stream = void*;

}  // namespace detcore
