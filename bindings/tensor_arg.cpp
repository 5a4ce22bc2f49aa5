#include "tensor_arg.h"

#include <pybind11/numpy.h>

#include <string>

#include "detcore/errors.h"
#include "dlpack.h"

namespace detcore::bindings {
namespace {

DType dtype_from_numpy(const py::dtype& dt, const char* name) {
  const char kind = dt.kind();
  const auto size = dt.itemsize();
  if (kind == 'f' && size == 4) return DType::Float32;
  if (kind == 'f' && size == 8) return DType::Float64;
  if (kind == 'f' && size == 2) return DType::Float16;
  if (kind == 'i' && size == 8) return DType::Int64;
  if (kind == 'i' && size == 4) return DType::Int32;
  if (kind == 'u' && size == 1) return DType::UInt8;
  if (kind == 'b') return DType::Bool;
  throw_type_error(name, ": unsupported dtype ", std::string(py::str(dt)));
}

DType dtype_from_dlpack(DLDataType dt, const char* name) {
  if (dt.lanes == 1) {
    if (dt.code == kDLFloat && dt.bits == 32) return DType::Float32;
    if (dt.code == kDLFloat && dt.bits == 64) return DType::Float64;
    if (dt.code == kDLFloat && dt.bits == 16) return DType::Float16;
    if (dt.code == kDLBfloat && dt.bits == 16) return DType::BFloat16;
    if (dt.code == kDLInt && dt.bits == 64) return DType::Int64;
    if (dt.code == kDLInt && dt.bits == 32) return DType::Int32;
    if (dt.code == kDLUInt && dt.bits == 8) return DType::UInt8;
    if (dt.code == kDLBool && dt.bits == 8) return DType::Bool;
  }
  throw_type_error(name, ": unsupported DLPack dtype (code ", int(dt.code), ", bits ", int(dt.bits), ", lanes ",
                   dt.lanes, ")");
}

void check_ndim(int ndim, const char* name) {
  if (ndim > TensorRef::kMaxDims) {
    throw_value_error(name, ": at most ", TensorRef::kMaxDims, " dimensions are supported, got ", ndim);
  }
}

}  // namespace

TensorArg::TensorArg(py::handle obj, const char* name, bool writable) {
  if (py::isinstance<py::array>(obj)) {
    from_numpy(obj, name, writable);
  } else if (PyCapsule_CheckExact(obj.ptr())) {
    from_capsule(obj, name, writable);
  } else {
    throw_type_error(name, ": expected a numpy array or a DLPack capsule, got ",
                     std::string(py::str(py::type::handle_of(obj).attr("__name__"))));
  }
}

TensorArg::~TensorArg() = default;

void TensorArg::from_numpy(py::handle obj, const char* name, bool writable) {
  auto array = py::reinterpret_borrow<py::array>(obj);
  check_ndim(static_cast<int>(array.ndim()), name);
  if (!(array.flags() & py::array::c_style)) throw_value_error(name, ": expected a C-contiguous array");
  if (!array.dtype().attr("isnative").cast<bool>()) {
    throw_type_error(name, ": expected native byte order, got ", std::string(py::str(array.dtype())));
  }
  if (writable && !array.writeable()) throw_value_error(name, ": expected a writable array");
  ref_.dtype = dtype_from_numpy(array.dtype(), name);
  ref_.device = Device{DeviceKind::CPU, 0};
  ref_.ndim = static_cast<int>(array.ndim());
  for (int d = 0; d < ref_.ndim; ++d) ref_.shape[d] = array.shape(d);
  ref_.data = const_cast<void*>(array.data());
}

void TensorArg::from_capsule(py::handle obj, const char* name, bool writable) {
  PyObject* capsule = obj.ptr();
  const DLTensor* tensor = nullptr;
  if (PyCapsule_IsValid(capsule, "dltensor")) {
    auto* managed = static_cast<DLManagedTensor*>(PyCapsule_GetPointer(capsule, "dltensor"));
    PyCapsule_SetName(capsule, "used_dltensor");
    owner_ = std::shared_ptr<void>(managed, [](void* p) {
      auto* m = static_cast<DLManagedTensor*>(p);
      if (m->deleter) m->deleter(m);
    });
    tensor = &managed->dl_tensor;
  } else if (PyCapsule_IsValid(capsule, "dltensor_versioned")) {
    auto* managed = static_cast<DLManagedTensorVersioned*>(PyCapsule_GetPointer(capsule, "dltensor_versioned"));
    PyCapsule_SetName(capsule, "used_dltensor_versioned");
    owner_ = std::shared_ptr<void>(managed, [](void* p) {
      auto* m = static_cast<DLManagedTensorVersioned*>(p);
      if (m->deleter) m->deleter(m);
    });
    if (managed->version.major > 1) {
      throw_type_error(name, ": DLPack version ", managed->version.major, " is not supported");
    }
    if (writable && (managed->flags & kDLPackFlagReadOnly)) throw_value_error(name, ": expected a writable array");
    tensor = &managed->dl_tensor;
  } else {
    throw_type_error(name, ": expected an unused DLPack capsule");
  }

  check_ndim(tensor->ndim, name);
  ref_.dtype = dtype_from_dlpack(tensor->dtype, name);
  switch (tensor->device.device_type) {
    case kDLCPU:
    case kDLCUDAHost: ref_.device = Device{DeviceKind::CPU, 0}; break;
    case kDLCUDA:
    case kDLCUDAManaged: ref_.device = Device{DeviceKind::CUDA, tensor->device.device_id}; break;
    default: throw_type_error(name, ": unsupported DLPack device type ", tensor->device.device_type);
  }
  ref_.ndim = tensor->ndim;
  int64_t expected_stride = 1;
  bool contiguous = true;
  for (int d = ref_.ndim - 1; d >= 0; --d) {
    ref_.shape[d] = tensor->shape[d];
    // Strides of size-1 dimensions carry no information.
    if (tensor->strides != nullptr && tensor->shape[d] != 1 && tensor->strides[d] != expected_stride) {
      contiguous = false;
    }
    expected_stride *= tensor->shape[d];
  }
  if (!contiguous && expected_stride != 0) throw_value_error(name, ": expected a C-contiguous array");
  ref_.data = static_cast<char*>(tensor->data) + tensor->byte_offset;
}

void register_exceptions(py::module_& m) {
  (void)m;
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const TypeError& e) {
      PyErr_SetString(PyExc_TypeError, e.what());
    } catch (const RuntimeError& e) {
      PyErr_SetString(PyExc_RuntimeError, e.what());
    }
  });
}

}  // namespace detcore::bindings
