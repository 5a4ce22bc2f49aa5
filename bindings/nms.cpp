#include "detcore/ops/nms.h"
#include "ops.h"
#include "tensor_arg.h"

namespace detcore::bindings {

void bind_nms(py::module_& m) {
  m.def(
      "nms_workspace_size",
      [](int64_t num_boxes, bool cuda, int device_index) {
        return detcore::nms_workspace_size(num_boxes,
                                           Device{cuda ? DeviceKind::CUDA : DeviceKind::CPU, cuda ? device_index : 0});
      },
      py::arg("num_boxes"), py::arg("cuda") = false, py::arg("device_index") = 0,
      "Bytes of workspace nms and batched_nms need for num_boxes boxes.");
  m.def(
      "nms",
      [](py::handle boxes, py::handle scores, double iou_threshold, py::handle keep, py::handle workspace,
         std::uintptr_t stream) {
        TensorArg b(boxes, "boxes"), s(scores, "scores"), k(keep, "keep", true), w(workspace, "workspace", true);
        py::gil_scoped_release no_gil;
        return detcore::nms(b, s, iou_threshold, k, w, reinterpret_cast<Stream>(stream));
      },
      py::arg("boxes"), py::arg("scores"), py::arg("iou_threshold"), py::arg("keep"), py::arg("workspace"),
      py::arg("stream") = 0, "Writes the kept indices into keep[:count] and returns count.");
  m.def(
      "batched_nms",
      [](py::handle boxes, py::handle scores, py::handle idxs, double iou_threshold, py::handle keep,
         py::handle workspace, std::uintptr_t stream) {
        TensorArg b(boxes, "boxes"), s(scores, "scores"), i(idxs, "idxs"), k(keep, "keep", true),
            w(workspace, "workspace", true);
        py::gil_scoped_release no_gil;
        return detcore::batched_nms(b, s, i, iou_threshold, k, w, reinterpret_cast<Stream>(stream));
      },
      py::arg("boxes"), py::arg("scores"), py::arg("idxs"), py::arg("iou_threshold"), py::arg("keep"),
      py::arg("workspace"), py::arg("stream") = 0, "Writes the kept indices into keep[:count] and returns count.");
}

}  // namespace detcore::bindings
