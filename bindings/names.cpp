#include "names.h"

#include <cctype>

#include "detcore/errors.h"

namespace detcore::bindings {

Device device_from_name(const std::string& name) {
  if (name == "cpu") return Device{DeviceKind::CPU, 0};
  if (name == "cuda") return Device{DeviceKind::CUDA, 0};
  const std::string prefix = "cuda:";
  if (name.size() > prefix.size() && name.size() <= prefix.size() + 4 && name.compare(0, prefix.size(), prefix) == 0) {
    int index = 0;
    bool digits = true;
    for (size_t i = prefix.size(); i < name.size(); ++i) {
      digits = digits && std::isdigit(static_cast<unsigned char>(name[i]));
      index = index * 10 + (name[i] - '0');
    }
    if (digits) return Device{DeviceKind::CUDA, index};
  }
  throw_value_error("device: expected 'cpu', 'cuda' or 'cuda:N', got '", name, "'");
}

DType dtype_from_name(const std::string& name) {
  for (DType d : {DType::Float16, DType::BFloat16, DType::Float32, DType::Float64, DType::Int32, DType::Int64,
                  DType::UInt8, DType::Bool}) {
    if (name == dtype_name(d)) return d;
  }
  throw_type_error(
      "dtype: expected the name of a dtype (float16, bfloat16, float32, float64, int32, int64, uint8 "
      "or bool), got '",
      name, "'");
}

}  // namespace detcore::bindings
