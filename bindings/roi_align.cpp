#include "detcore/ops/roi_align.h"

#include <string>

#include "names.h"
#include "ops.h"
#include "tensor_arg.h"

namespace detcore::bindings {
namespace {

RoIAlignParams make_params(int64_t pooled_height, int64_t pooled_width, double spatial_scale, int64_t sampling_ratio,
                           bool aligned, bool deterministic) {
  return RoIAlignParams{pooled_height, pooled_width, spatial_scale, sampling_ratio, aligned, deterministic};
}

}  // namespace

void bind_roi_align(py::module_& m) {
  m.def(
      "roi_align_forward",
      [](int64_t pooled_height, int64_t pooled_width, double spatial_scale, int64_t sampling_ratio, bool aligned,
         py::handle input, py::handle boxes, py::handle out, std::uintptr_t stream) {
        const auto params = make_params(pooled_height, pooled_width, spatial_scale, sampling_ratio, aligned, false);
        TensorArg in(input, "input"), b(boxes, "boxes"), o(out, "out", true);
        py::gil_scoped_release no_gil;
        detcore::roi_align_forward(params, in, b, o, reinterpret_cast<Stream>(stream));
      },
      py::arg("pooled_height"), py::arg("pooled_width"), py::arg("spatial_scale"), py::arg("sampling_ratio"),
      py::arg("aligned"), py::arg("input"), py::arg("boxes"), py::arg("out"), py::arg("stream") = 0);

  m.def(
      "roi_align_backward_workspace_bytes",
      [](const std::string& device, const std::string& dtype, int64_t pooled_height, int64_t pooled_width,
         double spatial_scale, int64_t sampling_ratio, bool aligned, bool deterministic, int64_t grad_input_numel) {
        const auto params =
            make_params(pooled_height, pooled_width, spatial_scale, sampling_ratio, aligned, deterministic);
        return detcore::roi_align_backward_workspace_bytes(params, device_from_name(device), dtype_from_name(dtype),
                                                           grad_input_numel);
      },
      py::arg("device"), py::arg("dtype"), py::arg("pooled_height"), py::arg("pooled_width"), py::arg("spatial_scale"),
      py::arg("sampling_ratio"), py::arg("aligned"), py::arg("deterministic"), py::arg("grad_input_numel"),
      "Bytes of workspace roi_align_backward needs.");

  m.def(
      "roi_align_backward",
      [](int64_t pooled_height, int64_t pooled_width, double spatial_scale, int64_t sampling_ratio, bool aligned,
         bool deterministic, py::handle grad_output, py::handle boxes, py::handle grad_input, py::handle workspace,
         std::uintptr_t stream) {
        const auto params =
            make_params(pooled_height, pooled_width, spatial_scale, sampling_ratio, aligned, deterministic);
        TensorArg go(grad_output, "grad_output"), b(boxes, "boxes"), gi(grad_input, "grad_input", true),
            ws(workspace, "workspace", true);
        py::gil_scoped_release no_gil;
        detcore::roi_align_backward(params, go, b, gi, ws, reinterpret_cast<Stream>(stream));
      },
      py::arg("pooled_height"), py::arg("pooled_width"), py::arg("spatial_scale"), py::arg("sampling_ratio"),
      py::arg("aligned"), py::arg("deterministic"), py::arg("grad_output"), py::arg("boxes"), py::arg("grad_input"),
      py::arg("workspace"), py::arg("stream") = 0);
}

}  // namespace detcore::bindings
