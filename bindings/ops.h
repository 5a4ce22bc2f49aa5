// One bind_* function per op file in bindings/.
#pragma once

#include <pybind11/pybind11.h>

namespace detcore::bindings {
void bind_box_iou(pybind11::module_& m);
void bind_roi_pool(pybind11::module_& m);
void bind_nms(pybind11::module_& m);
void bind_roi_align(pybind11::module_& m);
void bind_anchors(pybind11::module_& m);
void bind_box_coding(pybind11::module_& m);
void bind_focal_loss(pybind11::module_& m);
void bind_paste_masks(pybind11::module_& m);
void bind_spp_pool(pybind11::module_& m);
void bind_box_iou_variants(pybind11::module_& m);
void bind_soft_nms(pybind11::module_& m);
}  // namespace detcore::bindings
