#include "detcore/ops/soft_nms.h"
#include "names.h"

#include <optional>
#include <string>

#include "detcore/errors.h"
#include "ops.h"
#include "tensor_arg.h"

namespace detcore::bindings {
namespace {

SoftNMSParams make_params(const std::string& method, double iou_threshold, double sigma, double score_threshold) {
  SoftNMSParams params;
  if (method == "gaussian") {
    params.method = SoftNMSMethod::Gaussian;
  } else if (method == "linear") {
    params.method = SoftNMSMethod::Linear;
  } else {
    throw_value_error("method: expected 'gaussian' or 'linear', got '", method, "'");
  }
  params.iou_threshold = iou_threshold;
  params.sigma = sigma;
  params.score_threshold = score_threshold;
  return params;
}

}  // namespace

void bind_soft_nms(py::module_& m) {
  m.def(
      "soft_nms_workspace_bytes",
      [](const std::string& device, const std::string& dtype, const std::string& method, double iou_threshold,
         double sigma, double score_threshold, int64_t num_boxes) {
        return detcore::soft_nms_workspace_bytes(make_params(method, iou_threshold, sigma, score_threshold),
                                                 device_from_name(device), dtype_from_name(dtype), num_boxes);
      },
      py::arg("device"), py::arg("dtype"), py::arg("method"), py::arg("iou_threshold"), py::arg("sigma"),
      py::arg("score_threshold"), py::arg("num_boxes"), "Bytes of workspace soft_nms needs for num_boxes boxes.");
  m.def(
      "soft_nms",
      [](const std::string& method, double iou_threshold, double sigma, double score_threshold, py::handle boxes,
         py::handle scores, py::handle idxs, py::handle keep, py::handle out_scores, py::handle workspace,
         std::uintptr_t stream) {
        const auto params = make_params(method, iou_threshold, sigma, score_threshold);
        TensorArg b(boxes, "boxes"), s(scores, "scores"), k(keep, "keep", true), o(out_scores, "out_scores", true),
            w(workspace, "workspace", true);
        std::optional<TensorArg> i;
        if (!idxs.is_none()) i.emplace(idxs, "idxs");
        py::gil_scoped_release no_gil;
        return detcore::soft_nms(params, b, s, i ? &i->ref() : nullptr, k, o, w, reinterpret_cast<Stream>(stream));
      },
      py::arg("method"), py::arg("iou_threshold"), py::arg("sigma"), py::arg("score_threshold"), py::arg("boxes"),
      py::arg("scores"), py::arg("idxs"), py::arg("keep"), py::arg("out_scores"), py::arg("workspace"),
      py::arg("stream") = 0,
      "Writes the kept indices and their decayed scores into keep[:count], out_scores[:count]; returns count.");
}

}  // namespace detcore::bindings
