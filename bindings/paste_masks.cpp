#include "detcore/ops/paste_masks.h"

#include <pybind11/stl.h>

#include "ops.h"
#include "tensor_arg.h"

namespace detcore::bindings {

void bind_paste_masks(py::module_& m) {
  m.def(
      "paste_masks",
      [](py::handle masks, py::handle boxes, py::handle out, std::optional<double> threshold,
         std::uintptr_t stream, bool out_holds_zeros) {
        TensorArg ms(masks, "masks"), bs(boxes, "boxes"), o(out, "out", true);
        py::gil_scoped_release no_gil;
        detcore::paste_masks(ms, bs, o, threshold, reinterpret_cast<Stream>(stream), out_holds_zeros);
      },
      py::arg("masks"), py::arg("boxes"), py::arg("out"), py::arg("threshold") = py::none(),
      py::arg("stream") = 0, py::arg("out_holds_zeros") = false);
}

}  // namespace detcore::bindings
