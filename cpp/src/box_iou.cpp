#include "detcore/ops/box_iou.h"

#include "backend/box_iou.h"
#include "checks.h"
#include "dispatch.h"

namespace detcore {

void box_iou(const TensorRef& boxes1, const TensorRef& boxes2, const TensorRef& out, Stream stream) {
  check::matrix(boxes1, "boxes1", 4, "(N, 4)");
  check::matrix(boxes2, "boxes2", 4, "(M, 4)");
  const bool integers = boxes1.dtype == DType::Int32 || boxes1.dtype == DType::Int64;
  if (!integers && !is_floating(boxes1.dtype)) {
    throw_type_error("boxes1: expected a floating dtype (float32, float64, float16, bfloat16) or int32 / int64, got ",
                     dtype_name(boxes1.dtype));
  }
  check::same_dtype(boxes1, "boxes1", boxes2, "boxes2");
  if (integers) {
    check::dtype(out, "out", DType::Float32);
  } else {
    check::same_dtype(boxes1, "boxes1", out, "out");
  }
  check::same_device(boxes1, "boxes1", boxes2, "boxes2");
  check::same_device(boxes1, "boxes1", out, "out");
  check::shape(out, "out", {boxes1.shape[0], boxes2.shape[0]});
  if (out.numel() == 0) return;
  check::data(boxes1, "boxes1");
  check::data(boxes2, "boxes2");
  check::data(out, "out");
  DETCORE_DEVICE_DISPATCH(boxes1, "box_iou", cpu::box_iou(boxes1, boxes2, out),
                          cuda::box_iou(boxes1, boxes2, out, stream));
}

}  // namespace detcore
