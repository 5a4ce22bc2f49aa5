#include "detcore/ops/roi_align.h"

#include <string>

#include "detcore/errors.h"
#include "ops.h"
#include "tensor_arg.h"

namespace detcore::bindings {
namespace {

RoIAlignParams make_params(double spatial_scale, int64_t pooled_height, int64_t pooled_width, int64_t sampling_ratio,
                           bool aligned) {
  RoIAlignParams p;
  p.pooled_height = pooled_height;
  p.pooled_width = pooled_width;
  p.spatial_scale = spatial_scale;
  p.sampling_ratio = sampling_ratio;
  p.aligned = aligned;
  return p;
}

DType dtype_from_name(const std::string& name) {
  for (DType d : {DType::Float16, DType::BFloat16, DType::Float32, DType::Float64}) {
    if (name == dtype_name(d)) return d;
  }
  throw_type_error("dtype: expected float16, bfloat16, float32 or float64, got ", name);
}

}  // namespace

void bind_roi_align(py::module_& m) {
  m.def(
      "roi_align_forward",
      [](py::handle input, py::handle boxes, py::handle out, double spatial_scale, int64_t pooled_height,
         int64_t pooled_width, int64_t sampling_ratio, bool aligned, std::uintptr_t stream) {
        TensorArg in(input, "input"), b(boxes, "boxes"), o(out, "out", true);
        const auto params = make_params(spatial_scale, pooled_height, pooled_width, sampling_ratio, aligned);
        py::gil_scoped_release no_gil;
        detcore::roi_align_forward(in, b, o, params, reinterpret_cast<Stream>(stream));
      },
      py::arg("input"), py::arg("boxes"), py::arg("out"), py::arg("spatial_scale"), py::arg("pooled_height"),
      py::arg("pooled_width"), py::arg("sampling_ratio"), py::arg("aligned"), py::arg("stream") = 0);

  m.def(
      "roi_align_backward_workspace_bytes",
      [](const std::string& dtype, bool is_cuda, int64_t grad_input_numel, bool deterministic) {
        const Device device{is_cuda ? DeviceKind::CUDA : DeviceKind::CPU, 0};
        return detcore::roi_align_backward_workspace_bytes(dtype_from_name(dtype), device, grad_input_numel,
                                                          deterministic);
      },
      py::arg("dtype"), py::arg("is_cuda"), py::arg("grad_input_numel"), py::arg("deterministic"));

  m.def(
      "roi_align_backward",
      [](py::handle grad_output, py::handle boxes, py::handle grad_input, py::handle workspace, double spatial_scale,
         int64_t pooled_height, int64_t pooled_width, int64_t sampling_ratio, bool aligned, bool deterministic,
         std::uintptr_t stream) {
        TensorArg go(grad_output, "grad_output"), b(boxes, "boxes"), gi(grad_input, "grad_input", true),
            ws(workspace, "workspace", true);
        const auto params = make_params(spatial_scale, pooled_height, pooled_width, sampling_ratio, aligned);
        py::gil_scoped_release no_gil;
        detcore::roi_align_backward(go, b, gi, ws, params, deterministic, reinterpret_cast<Stream>(stream));
      },
      py::arg("grad_output"), py::arg("boxes"), py::arg("grad_input"), py::arg("workspace"),
      py::arg("spatial_scale"), py::arg("pooled_height"), py::arg("pooled_width"), py::arg("sampling_ratio"),
      py::arg("aligned"), py::arg("deterministic"), py::arg("stream") = 0);
}

}  // namespace detcore::bindings
