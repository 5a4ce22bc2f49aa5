#include "detcore/ops/box_iou.h"
#include "ops.h"
#include "tensor_arg.h"

namespace detcore::bindings {

void bind_box_iou(py::module_& m) {
  m.def(
      "box_iou",
      [](py::handle boxes1, py::handle boxes2, py::handle out, std::uintptr_t stream) {
        TensorArg b1(boxes1, "boxes1"), b2(boxes2, "boxes2"), o(out, "out", true);
        py::gil_scoped_release no_gil;
        detcore::box_iou(b1, b2, o, reinterpret_cast<Stream>(stream));
      },
      py::arg("boxes1"), py::arg("boxes2"), py::arg("out"), py::arg("stream") = 0);
}

}  // namespace detcore::bindings
