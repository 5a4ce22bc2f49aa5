#include "detcore/ops/paste_masks.h"

#include <pybind11/stl.h>

#include "ops.h"
#include "tensor_arg.h"

namespace detcore::bindings {

void bind_paste_masks(py::module_& m) {
  m.def(
      "paste_masks",
      [](std::optional<double> threshold, bool out_holds_zeros, py::handle masks, py::handle boxes, py::handle out,
         std::uintptr_t stream) {
        const PasteMasksParams params{threshold, out_holds_zeros};
        TensorArg ms(masks, "masks"), bs(boxes, "boxes"), o(out, "out", true);
        py::gil_scoped_release no_gil;
        detcore::paste_masks(params, ms, bs, o, reinterpret_cast<Stream>(stream));
      },
      py::arg("threshold"), py::arg("out_holds_zeros"), py::arg("masks"), py::arg("boxes"), py::arg("out"),
      py::arg("stream") = 0);
}

}  // namespace detcore::bindings
