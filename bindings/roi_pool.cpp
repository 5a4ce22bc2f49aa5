#include "detcore/ops/roi_pool.h"
#include "ops.h"
#include "tensor_arg.h"

namespace detcore::bindings {

void bind_roi_pool(py::module_& m) {
  m.def(
      "roi_pool_forward",
      [](py::handle input, py::handle boxes, double spatial_scale, py::handle out, py::handle argmax,
         std::uintptr_t stream) {
        TensorArg in(input, "input"), rois(boxes, "boxes"), o(out, "out", true), am(argmax, "argmax", true);
        py::gil_scoped_release no_gil;
        detcore::roi_pool_forward(in, rois, spatial_scale, o, am, reinterpret_cast<Stream>(stream));
      },
      py::arg("input"), py::arg("boxes"), py::arg("spatial_scale"), py::arg("out"), py::arg("argmax"),
      py::arg("stream") = 0);
  m.def(
      "roi_pool_backward",
      [](py::handle grad_out, py::handle boxes, py::handle argmax, py::handle grad_input, std::uintptr_t stream,
         bool deterministic) {
        TensorArg g(grad_out, "grad_out"), rois(boxes, "boxes"), am(argmax, "argmax"),
            gi(grad_input, "grad_input", true);
        py::gil_scoped_release no_gil;
        detcore::roi_pool_backward(g, rois, am, gi, reinterpret_cast<Stream>(stream), deterministic);
      },
      py::arg("grad_out"), py::arg("boxes"), py::arg("argmax"), py::arg("grad_input"), py::arg("stream") = 0,
      py::arg("deterministic") = false);
}

}  // namespace detcore::bindings
