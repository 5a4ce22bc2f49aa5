#include <optional>
#include <string>

#include "detcore/errors.h"
#include "detcore/ops/focal_loss.h"
#include "names.h"
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

SigmoidFocalLossParams make_params(double alpha, double gamma, const std::string& reduction) {
  return SigmoidFocalLossParams{alpha, gamma, parse_reduction(reduction)};
}

}  // namespace

void bind_focal_loss(py::module_& m) {
  m.def(
      "sigmoid_focal_loss",
      [](double alpha, double gamma, const std::string& reduction, py::handle inputs, py::handle targets,
         py::handle loss, py::handle grad, py::handle workspace, std::uintptr_t stream) {
        const auto params = make_params(alpha, gamma, reduction);
        TensorArg x(inputs, "inputs"), t(targets, "targets"), l(loss, "loss", true);
        std::optional<TensorArg> g, w;
        if (!grad.is_none()) g.emplace(grad, "grad", true);
        if (!workspace.is_none()) w.emplace(workspace, "workspace", true);
        py::gil_scoped_release no_gil;
        detcore::sigmoid_focal_loss(params, x, t, l, g ? &g->ref() : nullptr, w ? &w->ref() : nullptr,
                                    reinterpret_cast<Stream>(stream));
      },
      py::arg("alpha"), py::arg("gamma"), py::arg("reduction"), py::arg("inputs"), py::arg("targets"), py::arg("loss"),
      py::arg("grad"), py::arg("workspace"), py::arg("stream") = 0,
      "Sigmoid focal loss into `loss` and, unless None, its gradient into `grad`.");
  m.def(
      "sigmoid_focal_loss_workspace_bytes",
      [](const std::string& device, const std::string& dtype, double alpha, double gamma, const std::string& reduction,
         int64_t numel) {
        return detcore::sigmoid_focal_loss_workspace_bytes(make_params(alpha, gamma, reduction),
                                                           device_from_name(device), dtype_from_name(dtype), numel);
      },
      py::arg("device"), py::arg("dtype"), py::arg("alpha"), py::arg("gamma"), py::arg("reduction"), py::arg("numel"),
      "Bytes of workspace sigmoid_focal_loss needs for `numel` logits.");
}

}  // namespace detcore::bindings
