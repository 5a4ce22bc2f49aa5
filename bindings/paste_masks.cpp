#include "detcore/ops/paste_masks.h"

#include <pybind11/stl.h>

#include <string>

#include "detcore/errors.h"
#include "ops.h"
#include "tensor_arg.h"

namespace detcore::bindings {
namespace {

PasteMode parse_mode(const std::string& mode) {
  if (mode == "bilinear") return PasteMode::Bilinear;
  if (mode == "bicubic") return PasteMode::Bicubic;
  throw_value_error("mode: expected 'bilinear' or 'bicubic', got '", mode, "'");
}

}  // namespace

void bind_paste_masks(py::module_& m) {
  m.def(
      "paste_masks",
      [](std::optional<double> threshold, bool out_holds_zeros, const std::string& mode, py::handle masks,
         py::handle boxes, py::handle out, std::uintptr_t stream) {
        const PasteMasksParams params{threshold, out_holds_zeros, parse_mode(mode)};
        TensorArg ms(masks, "masks"), bs(boxes, "boxes"), o(out, "out", true);
        py::gil_scoped_release no_gil;
        detcore::paste_masks(params, ms, bs, o, reinterpret_cast<Stream>(stream));
      },
      py::arg("threshold"), py::arg("out_holds_zeros"), py::arg("mode"), py::arg("masks"), py::arg("boxes"),
      py::arg("out"), py::arg("stream") = 0);
}

}  // namespace detcore::bindings
