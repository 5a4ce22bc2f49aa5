#include <pybind11/stl.h>

#include "detcore/ops/box_coding.h"
#include "ops.h"
#include "tensor_arg.h"

namespace detcore::bindings {

void bind_box_coding(py::module_& m) {
  m.def(
      "encode_boxes",
      [](const std::array<double, 4>& weights, py::handle reference_boxes, py::handle proposals, py::handle out,
         std::uintptr_t stream) {
        BoxCodingParams params;
        params.weights = weights;
        TensorArg r(reference_boxes, "reference_boxes"), p(proposals, "proposals"), o(out, "out", true);
        py::gil_scoped_release no_gil;
        detcore::encode_boxes(params, r, p, o, reinterpret_cast<Stream>(stream));
      },
      py::arg("weights"), py::arg("reference_boxes"), py::arg("proposals"), py::arg("out"), py::arg("stream") = 0);
  m.def(
      "decode_boxes",
      [](const std::array<double, 4>& weights, double clamp, py::handle deltas, py::handle boxes, py::handle out,
         std::uintptr_t stream) {
        const BoxCodingParams params{weights, clamp};
        TensorArg d(deltas, "deltas"), b(boxes, "boxes"), o(out, "out", true);
        py::gil_scoped_release no_gil;
        detcore::decode_boxes(params, d, b, o, reinterpret_cast<Stream>(stream));
      },
      py::arg("weights"), py::arg("clamp"), py::arg("deltas"), py::arg("boxes"), py::arg("out"), py::arg("stream") = 0);
  m.def(
      "decode_boxes_backward",
      [](const std::array<double, 4>& weights, double clamp, py::handle grad_out, py::handle deltas, py::handle boxes,
         py::handle grad_deltas, py::handle grad_boxes, std::uintptr_t stream) {
        const BoxCodingParams params{weights, clamp};
        TensorArg g(grad_out, "grad_out"), d(deltas, "deltas"), b(boxes, "boxes"), gd(grad_deltas, "grad_deltas", true),
            gb(grad_boxes, "grad_boxes", true);
        py::gil_scoped_release no_gil;
        detcore::decode_boxes_backward(params, g, d, b, gd, gb, reinterpret_cast<Stream>(stream));
      },
      py::arg("weights"), py::arg("clamp"), py::arg("grad_out"), py::arg("deltas"), py::arg("boxes"),
      py::arg("grad_deltas"), py::arg("grad_boxes"), py::arg("stream") = 0);
}

}  // namespace detcore::bindings
