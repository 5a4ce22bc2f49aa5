#include "detcore/ops/roi_pool.h"
#include "ops.h"
#include "tensor_arg.h"

namespace detcore::bindings {

void bind_roi_pool(py::module_& m) {
  m.def(
      "roi_pool_forward",
      [](int64_t pooled_height, int64_t pooled_width, double spatial_scale, py::handle input, py::handle boxes,
         py::handle out, py::handle argmax, std::uintptr_t stream) {
        const RoIPoolParams params{pooled_height, pooled_width, spatial_scale, false};
        TensorArg in(input, "input"), rois(boxes, "boxes"), o(out, "out", true), am(argmax, "argmax", true);
        py::gil_scoped_release no_gil;
        detcore::roi_pool_forward(params, in, rois, o, am, reinterpret_cast<Stream>(stream));
      },
      py::arg("pooled_height"), py::arg("pooled_width"), py::arg("spatial_scale"), py::arg("input"), py::arg("boxes"),
      py::arg("out"), py::arg("argmax"), py::arg("stream") = 0);
  m.def(
      "roi_pool_backward",
      [](int64_t pooled_height, int64_t pooled_width, bool deterministic, py::handle grad_out, py::handle boxes,
         py::handle argmax, py::handle grad_input, std::uintptr_t stream) {
        RoIPoolParams params;  // spatial_scale: forward only
        params.pooled_height = pooled_height;
        params.pooled_width = pooled_width;
        params.deterministic = deterministic;
        TensorArg g(grad_out, "grad_out"), rois(boxes, "boxes"), am(argmax, "argmax"),
            gi(grad_input, "grad_input", true);
        py::gil_scoped_release no_gil;
        detcore::roi_pool_backward(params, g, rois, am, gi, reinterpret_cast<Stream>(stream));
      },
      py::arg("pooled_height"), py::arg("pooled_width"), py::arg("deterministic"), py::arg("grad_out"),
      py::arg("boxes"), py::arg("argmax"), py::arg("grad_input"), py::arg("stream") = 0);
}

}  // namespace detcore::bindings
