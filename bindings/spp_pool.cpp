#include "detcore/ops/spp_pool.h"

#include <pybind11/stl.h>

#include <vector>

#include "ops.h"
#include "tensor_arg.h"

namespace detcore::bindings {

void bind_spp_pool(py::module_& m) {
  m.def(
      "spp_pool_forward",
      [](const std::vector<int64_t>& levels, double spatial_scale, py::handle input, py::handle boxes, py::handle out,
         py::handle argmax, std::uintptr_t stream) {
        const SppPoolParams params{levels, spatial_scale, false};
        TensorArg in(input, "input"), rois(boxes, "boxes"), o(out, "out", true), am(argmax, "argmax", true);
        py::gil_scoped_release no_gil;
        detcore::spp_pool_forward(params, in, rois, o, am, reinterpret_cast<Stream>(stream));
      },
      py::arg("levels"), py::arg("spatial_scale"), py::arg("input"), py::arg("boxes"), py::arg("out"),
      py::arg("argmax"), py::arg("stream") = 0);
  m.def(
      "spp_pool_backward",
      [](const std::vector<int64_t>& levels, bool deterministic, py::handle grad_out, py::handle boxes,
         py::handle argmax, py::handle grad_input, std::uintptr_t stream) {
        SppPoolParams params;  // spatial_scale: forward only
        params.levels = levels;
        params.deterministic = deterministic;
        TensorArg g(grad_out, "grad_out"), rois(boxes, "boxes"), am(argmax, "argmax"),
            gi(grad_input, "grad_input", true);
        py::gil_scoped_release no_gil;
        detcore::spp_pool_backward(params, g, rois, am, gi, reinterpret_cast<Stream>(stream));
      },
      py::arg("levels"), py::arg("deterministic"), py::arg("grad_out"), py::arg("boxes"), py::arg("argmax"),
      py::arg("grad_input"), py::arg("stream") = 0);
}

}  // namespace detcore::bindings
