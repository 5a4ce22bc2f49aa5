// The extension module detcore._C: a thin layer over the C++ core. It turns
// arrays into TensorRefs, releases the GIL around kernels and maps errors to
// Python exceptions; it knows nothing of detectors.
#include <pybind11/pybind11.h>

#include "detcore/errors.h"
#include "detcore/parallel.h"
#include "ops.h"
#include "tensor_arg.h"

namespace py = pybind11;
using namespace detcore::bindings;

PYBIND11_MODULE(_C, m) {
  m.doc() = "detcore native operators";
  register_exceptions(m);
  m.def("num_threads", &detcore::num_threads, "Threads used by the CPU kernels.");
  m.def(
      "set_num_threads",
      [](int n) {
        if (n < 1) throw detcore::ValueError("n: expected a positive number of threads, got " + std::to_string(n));
        py::gil_scoped_release no_gil;
        return detcore::set_num_threads(n);
      },
      py::arg("n"), "Sets the number of threads used by the CPU kernels; returns how many run.");
  m.def("thread_pool_failure", &detcore::thread_pool_failure,
        "Why the CPU thread pool runs fewer threads than asked for, or ''.");
#ifdef DETCORE_WITH_CUDA
  m.attr("has_cuda") = true;
#else
  m.attr("has_cuda") = false;
#endif
  bind_box_iou(m);
  bind_roi_pool(m);
  bind_nms(m);
  bind_roi_align(m);
  bind_anchors(m);
  bind_box_coding(m);
  bind_focal_loss(m);
  bind_paste_masks(m);
  bind_spp_pool(m);
  bind_box_iou_variants(m);
  bind_soft_nms(m);
}
