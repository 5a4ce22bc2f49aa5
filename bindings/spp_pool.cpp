#include "detcore/ops/spp_pool.h"

#include <pybind11/stl.h>

#include <vector>

#include "ops.h"
#include "tensor_arg.h"

namespace detcore::bindings {
namespace {

SppPoolParams make_params(const std::vector<int64_t>& levels, double spatial_scale) {
  SppPoolParams p;
  p.levels = levels;
  p.spatial_scale = spatial_scale;
  return p;
}

}  // namespace

void bind_spp_pool(py::module_& m) {
  m.def(
      "spp_pool_forward",
      [](py::handle input, py::handle boxes, py::handle out, py::handle argmax, const std::vector<int64_t>& levels,
         double spatial_scale, std::uintptr_t stream) {
        TensorArg in(input, "input"), rois(boxes, "boxes"), o(out, "out", true), am(argmax, "argmax", true);
        const SppPoolParams params = make_params(levels, spatial_scale);
        py::gil_scoped_release no_gil;
        detcore::spp_pool_forward(params, in, rois, o, am, reinterpret_cast<Stream>(stream));
      },
      py::arg("input"), py::arg("boxes"), py::arg("out"), py::arg("argmax"), py::arg("levels"),
      py::arg("spatial_scale"), py::arg("stream") = 0);
  m.def(
      "spp_pool_backward",
      [](py::handle grad_out, py::handle boxes, py::handle argmax, py::handle grad_input,
         const std::vector<int64_t>& levels, bool deterministic, std::uintptr_t stream) {
        TensorArg g(grad_out, "grad_out"), rois(boxes, "boxes"), am(argmax, "argmax"),
            gi(grad_input, "grad_input", true);
        const SppPoolParams params = make_params(levels, 1.0);
        py::gil_scoped_release no_gil;
        detcore::spp_pool_backward(params, g, rois, am, gi, deterministic, reinterpret_cast<Stream>(stream));
      },
      py::arg("grad_out"), py::arg("boxes"), py::arg("argmax"), py::arg("grad_input"), py::arg("levels"),
      py::arg("deterministic") = false, py::arg("stream") = 0);
}

}  // namespace detcore::bindings
