#include <optional>
#include <string>

#include "detcore/errors.h"
#include "detcore/ops/focal_loss.h"
#include "ops.h"
#include "tensor_arg.h"

namespace detcore::bindings {
namespace {

Reduction parse_reduction(const std::string& reduction) {
  if (reduction == "none") return Reduction::None;
  if (reduction == "sum") return Reduction::Sum;
  if (reduction == "mean") return Reduction::Mean;
  throw_value_error("reduction: expected 'none', 'sum' or 'mean', got '", reduction, "'");
}

}  // namespace

void bind_focal_loss(py::module_& m) {
  m.def(
      "sigmoid_focal_loss",
      [](py::handle inputs, py::handle targets, py::handle loss, py::handle grad, py::handle workspace,
         double alpha, double gamma, const std::string& reduction, std::uintptr_t stream) {
        const Reduction mode = parse_reduction(reduction);
        TensorArg x(inputs, "inputs"), t(targets, "targets"), l(loss, "loss", true);
        std::optional<TensorArg> g, w;
        if (!grad.is_none()) g.emplace(grad, "grad", true);
        if (!workspace.is_none()) w.emplace(workspace, "workspace", true);
        py::gil_scoped_release no_gil;
        detcore::sigmoid_focal_loss(x, t, alpha, gamma, mode, l, g ? &g->ref() : nullptr, w ? &w->ref() : nullptr,
                                    reinterpret_cast<Stream>(stream));
      },
      py::arg("inputs"), py::arg("targets"), py::arg("loss"), py::arg("grad"), py::arg("workspace"),
      py::arg("alpha"), py::arg("gamma"), py::arg("reduction"), py::arg("stream") = 0,
      "Sigmoid focal loss into `loss` and, unless None, its gradient into `grad`.");
  m.def(
      "sigmoid_focal_loss_workspace_bytes",
      [](int64_t numel, bool cuda, int device_index, const std::string& reduction) {
        return detcore::sigmoid_focal_loss_workspace_bytes(
            Device{cuda ? DeviceKind::CUDA : DeviceKind::CPU, device_index}, numel, parse_reduction(reduction));
      },
      py::arg("numel"), py::arg("cuda"), py::arg("device_index"), py::arg("reduction"));
}

}  // namespace detcore::bindings
