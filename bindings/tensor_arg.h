// Turns a Python argument into a TensorRef for the duration of one call.
//
// Two kinds of objects are accepted: a numpy array (the CPU path; the Python
// layer hands numpy views of torch CPU tensors and of CPU DLPack arrays) and
// a DLPack capsule (the CUDA path). The capsule is consumed as the protocol
// asks: renamed to "used_dltensor" and its deleter called when the call ends.
#pragma once

#include <pybind11/pybind11.h>

#include <memory>

#include "detcore/tensor.h"

namespace detcore::bindings {

namespace py = pybind11;

class TensorArg {
 public:
  // writable: the op writes into it (outputs, workspaces); read-only arrays
  // are refused.
  TensorArg(py::handle obj, const char* name, bool writable = false);
  TensorArg(TensorArg&&) = default;
  ~TensorArg();

  const TensorRef& ref() const { return ref_; }
  operator const TensorRef&() const { return ref_; }

 private:
  void from_numpy(py::handle obj, const char* name, bool writable);
  void from_capsule(py::handle obj, const char* name, bool writable);

  TensorRef ref_;
  std::shared_ptr<void> owner_;  // calls the DLPack deleter, if any
};

// Registers the translation of detcore::TypeError / RuntimeError to Python.
void register_exceptions(py::module_& m);

}  // namespace detcore::bindings
