#include "detcore/ops/box_iou_variants.h"
#include "names.h"

#include <optional>
#include <string>

#include "detcore/errors.h"
#include "ops.h"
#include "tensor_arg.h"

namespace detcore::bindings {
namespace {

IoUVariant parse_variant(const std::string& variant) {
  if (variant == "generalized") return IoUVariant::Generalized;
  if (variant == "distance") return IoUVariant::Distance;
  if (variant == "complete") return IoUVariant::Complete;
  throw_value_error("variant: expected 'generalized', 'distance' or 'complete', got '", variant, "'");
}

Reduction parse_loss_reduction(const std::string& reduction) {
  if (reduction == "none") return Reduction::None;
  if (reduction == "sum") return Reduction::Sum;
  if (reduction == "mean") return Reduction::Mean;
  throw_value_error("reduction: expected 'none', 'sum' or 'mean', got '", reduction, "'");
}

BoxIoULossParams loss_params(const std::string& variant, const std::string& reduction, double eps) {
  BoxIoULossParams params;
  params.variant = parse_variant(variant);
  params.reduction = parse_loss_reduction(reduction);
  params.eps = eps;
  return params;
}

}  // namespace

void bind_box_iou_variants(py::module_& m) {
  m.def(
      "pairwise_box_iou",
      [](const std::string& variant, double eps, py::handle boxes1, py::handle boxes2, py::handle out,
         std::uintptr_t stream) {
        PairwiseIoUParams params;
        params.variant = parse_variant(variant);
        params.eps = eps;
        TensorArg b1(boxes1, "boxes1"), b2(boxes2, "boxes2"), o(out, "out", true);
        py::gil_scoped_release no_gil;
        detcore::pairwise_box_iou(params, b1, b2, o, reinterpret_cast<Stream>(stream));
      },
      py::arg("variant"), py::arg("eps"), py::arg("boxes1"), py::arg("boxes2"), py::arg("out"), py::arg("stream") = 0,
      "Generalized / distance / complete IoU of every pair of boxes into out (N, M).");
  m.def(
      "box_iou_loss_workspace_bytes",
      [](const std::string& device, const std::string& dtype, const std::string& variant, const std::string& reduction,
         double eps, int64_t n) {
        return detcore::box_iou_loss_workspace_bytes(loss_params(variant, reduction, eps), device_from_name(device),
                                                     dtype_from_name(dtype), n);
      },
      py::arg("device"), py::arg("dtype"), py::arg("variant"), py::arg("reduction"), py::arg("eps"), py::arg("n"),
      "Bytes of workspace box_iou_loss_forward needs for n pairs.");
  m.def(
      "box_iou_loss_forward",
      [](const std::string& variant, const std::string& reduction, double eps, py::handle boxes1, py::handle boxes2,
         py::handle loss, py::handle workspace, std::uintptr_t stream) {
        const auto params = loss_params(variant, reduction, eps);
        TensorArg b1(boxes1, "boxes1"), b2(boxes2, "boxes2"), l(loss, "loss", true);
        std::optional<TensorArg> w;
        if (!workspace.is_none()) w.emplace(workspace, "workspace", true);
        py::gil_scoped_release no_gil;
        detcore::box_iou_loss_forward(params, b1, b2, l, w ? &w->ref() : nullptr, reinterpret_cast<Stream>(stream));
      },
      py::arg("variant"), py::arg("reduction"), py::arg("eps"), py::arg("boxes1"), py::arg("boxes2"), py::arg("loss"),
      py::arg("workspace"), py::arg("stream") = 0);
  m.def(
      "box_iou_loss_backward",
      [](const std::string& variant, const std::string& reduction, double eps, py::handle boxes1, py::handle boxes2,
         py::handle grad_loss, py::handle grad1, py::handle grad2, std::uintptr_t stream) {
        const auto params = loss_params(variant, reduction, eps);
        TensorArg b1(boxes1, "boxes1"), b2(boxes2, "boxes2"), gl(grad_loss, "grad_loss"), g1(grad1, "grad1", true),
            g2(grad2, "grad2", true);
        py::gil_scoped_release no_gil;
        detcore::box_iou_loss_backward(params, b1, b2, gl, g1, g2, reinterpret_cast<Stream>(stream));
      },
      py::arg("variant"), py::arg("reduction"), py::arg("eps"), py::arg("boxes1"), py::arg("boxes2"),
      py::arg("grad_loss"), py::arg("grad1"), py::arg("grad2"), py::arg("stream") = 0);
}

}  // namespace detcore::bindings
