#include "detcore/tensor.h"

#include <sstream>

namespace detcore {

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::Float16: return "float16";
    case DType::BFloat16: return "bfloat16";
    case DType::Float32: return "float32";
    case DType::Float64: return "float64";
    case DType::Int32: return "int32";
    case DType::Int64: return "int64";
    case DType::UInt8: return "uint8";
    case DType::Bool: return "bool";
  }
  return "unknown";
}

int64_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::Float16:
    case DType::BFloat16: return 2;
    case DType::Float32:
    case DType::Int32: return 4;
    case DType::Float64:
    case DType::Int64: return 8;
    case DType::UInt8:
    case DType::Bool: return 1;
  }
  return 0;
}

std::string device_name(Device device) {
  return device.kind == DeviceKind::CPU ? std::string("cpu") : "cuda:" + std::to_string(device.index);
}

std::string TensorRef::shape_string() const {
  std::ostringstream out;
  out << '(';
  for (int d = 0; d < ndim; ++d) out << (d ? ", " : "") << shape[d];
  out << (ndim == 1 ? ",)" : ")");
  return out.str();
}

}  // namespace detcore
