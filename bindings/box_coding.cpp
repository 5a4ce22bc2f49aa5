#include <pybind11/stl.h>

#include "detcore/ops/box_coding.h"
#include "ops.h"
#include "tensor_arg.h"

namespace detcore::bindings {

void bind_box_coding(py::module_& m) {
  m.def(
      "encode_boxes",
      [](py::handle reference_boxes, py::handle proposals, const std::array<double, 4>& weights, py::handle out,
         std::uintptr_t stream) {
        TensorArg r(reference_boxes, "reference_boxes"), p(proposals, "proposals"), o(out, "out", true);
        py::gil_scoped_release no_gil;
        detcore::encode_boxes(r, p, weights, o, reinterpret_cast<Stream>(stream));
      },
      py::arg("reference_boxes"), py::arg("proposals"), py::arg("weights"), py::arg("out"), py::arg("stream") = 0);
  m.def(
      "decode_boxes",
      [](py::handle deltas, py::handle boxes, const std::array<double, 4>& weights, double clamp, py::handle out,
         std::uintptr_t stream) {
        TensorArg d(deltas, "deltas"), b(boxes, "boxes"), o(out, "out", true);
        py::gil_scoped_release no_gil;
        detcore::decode_boxes(d, b, weights, clamp, o, reinterpret_cast<Stream>(stream));
      },
      py::arg("deltas"), py::arg("boxes"), py::arg("weights"), py::arg("clamp"), py::arg("out"),
      py::arg("stream") = 0);
  m.def(
      "decode_boxes_backward",
      [](py::handle grad_out, py::handle deltas, py::handle boxes, const std::array<double, 4>& weights, double clamp,
         py::handle grad_deltas, py::handle grad_boxes, std::uintptr_t stream) {
        TensorArg g(grad_out, "grad_out"), d(deltas, "deltas"), b(boxes, "boxes"),
            gd(grad_deltas, "grad_deltas", true), gb(grad_boxes, "grad_boxes", true);
        py::gil_scoped_release no_gil;
        detcore::decode_boxes_backward(g, d, b, weights, clamp, gd, gb, reinterpret_cast<Stream>(stream));
      },
      py::arg("grad_out"), py::arg("deltas"), py::arg("boxes"), py::arg("weights"), py::arg("clamp"),
      py::arg("grad_deltas"), py::arg("grad_boxes"), py::arg("stream") = 0);
}

}  // namespace detcore::bindings
