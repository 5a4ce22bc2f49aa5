#include "detcore/ops/nms.h"
#include "names.h"
#include "ops.h"
#include "tensor_arg.h"

namespace detcore::bindings {

void bind_nms(py::module_& m) {
  m.def(
      "nms_workspace_bytes",
      [](const std::string& device, const std::string& dtype, double iou_threshold, int64_t num_boxes) {
        return detcore::nms_workspace_bytes(NmsParams{iou_threshold}, device_from_name(device), dtype_from_name(dtype),
                                            num_boxes);
      },
      py::arg("device"), py::arg("dtype"), py::arg("iou_threshold"), py::arg("num_boxes"),
      "Bytes of workspace nms and batched_nms need for num_boxes boxes.");
  m.def(
      "nms",
      [](double iou_threshold, py::handle boxes, py::handle scores, py::handle keep, py::handle workspace,
         std::uintptr_t stream) {
        TensorArg b(boxes, "boxes"), s(scores, "scores"), k(keep, "keep", true), w(workspace, "workspace", true);
        py::gil_scoped_release no_gil;
        return detcore::nms(NmsParams{iou_threshold}, b, s, k, w, reinterpret_cast<Stream>(stream));
      },
      py::arg("iou_threshold"), py::arg("boxes"), py::arg("scores"), py::arg("keep"), py::arg("workspace"),
      py::arg("stream") = 0, "Writes the kept indices into keep[:count] and returns count.");
  m.def(
      "batched_nms",
      [](double iou_threshold, py::handle boxes, py::handle scores, py::handle idxs, py::handle keep,
         py::handle workspace, std::uintptr_t stream) {
        TensorArg b(boxes, "boxes"), s(scores, "scores"), i(idxs, "idxs"), k(keep, "keep", true),
            w(workspace, "workspace", true);
        py::gil_scoped_release no_gil;
        return detcore::batched_nms(NmsParams{iou_threshold}, b, s, i, k, w, reinterpret_cast<Stream>(stream));
      },
      py::arg("iou_threshold"), py::arg("boxes"), py::arg("scores"), py::arg("idxs"), py::arg("keep"),
      py::arg("workspace"), py::arg("stream") = 0, "Writes the kept indices into keep[:count] and returns count.");
}

}  // namespace detcore::bindings
