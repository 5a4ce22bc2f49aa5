#include <pybind11/stl.h>

#include "detcore/ops/anchors.h"
#include "ops.h"
#include "tensor_arg.h"

namespace detcore::bindings {

void bind_anchors(py::module_& m) {
  m.def(
      "make_anchors",
      [](const std::vector<double>& sizes, const std::vector<double>& aspect_ratios, int64_t stride_h, int64_t stride_w,
         py::handle out, std::uintptr_t stream) {
        const MakeAnchorsParams params{sizes, aspect_ratios, stride_h, stride_w};
        TensorArg o(out, "out", true);
        py::gil_scoped_release no_gil;
        detcore::make_anchors(params, o, reinterpret_cast<Stream>(stream));
      },
      py::arg("sizes"), py::arg("aspect_ratios"), py::arg("stride_h"), py::arg("stride_w"), py::arg("out"),
      py::arg("stream") = 0);
}

}  // namespace detcore::bindings
