#include "backend/box_iou.h"

#include <vector>

#include "cpu/float_staging.h"
#include "detcore/math/box.h"
#include "detcore/math/ceil_div.h"
#include "detcore/parallel.h"
#include "dispatch.h"

namespace detcore::cpu {
namespace {

template <typename T>
void box_iou_kernel(const T* boxes1, int64_t n, const T* boxes2, int64_t m, T* out) {
  std::vector<T> areas2(m);
  for (int64_t j = 0; j < m; ++j) areas2[j] = math::area(math::load_box<T>(boxes2 + 4 * j));
  // Rows are independent; a grain of a few rows keeps chunks above ~10k pairs.
  const int64_t grain = m > 0 ? math::ceil_div<int64_t>(16384, m) : n;
  parallel_for(n, grain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const auto a = math::load_box<T>(boxes1 + 4 * i);
      const T area_a = math::area(a);
      T* row = out + i * m;
      for (int64_t j = 0; j < m; ++j) {
        row[j] = math::iou(a, area_a, math::load_box<T>(boxes2 + 4 * j), areas2[j]);
      }
    }
  });
}

// Integer boxes (int32 / int64) into a float32 out.
template <typename S>
void integer_box_iou_kernel(const S* boxes1, int64_t n, const S* boxes2, int64_t m, float* out) {
  std::vector<int64_t> areas2(m);
  for (int64_t j = 0; j < m; ++j) areas2[j] = math::area(math::load_box<int64_t>(boxes2 + 4 * j));
  const int64_t grain = m > 0 ? math::ceil_div<int64_t>(16384, m) : n;
  parallel_for(n, grain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const auto a = math::load_box<int64_t>(boxes1 + 4 * i);
      const int64_t area_a = math::area(a);
      float* row = out + i * m;
      for (int64_t j = 0; j < m; ++j) {
        row[j] = math::integer_iou(a, area_a, math::load_box<int64_t>(boxes2 + 4 * j), areas2[j]);
      }
    }
  });
}

}  // namespace

void box_iou(const TensorRef& boxes1, const TensorRef& boxes2, const TensorRef& out) {
  if (is_half(boxes1.dtype)) {
    FloatStaging staging;
    cpu::box_iou(staging.input(boxes1), staging.input(boxes2), staging.output(out));
    staging.finish();
    return;
  }
  if (boxes1.dtype == DType::Int32 || boxes1.dtype == DType::Int64) {
    switch (boxes1.dtype) {
      DETCORE_DTYPE_CASE(Int32, int32_t, [&] {
        integer_box_iou_kernel(boxes1.ptr<const scalar_t>(), boxes1.size(0), boxes2.ptr<const scalar_t>(),
                               boxes2.size(0), out.ptr<float>());
      })
      DETCORE_DTYPE_CASE(Int64, int64_t, [&] {
        integer_box_iou_kernel(boxes1.ptr<const scalar_t>(), boxes1.size(0), boxes2.ptr<const scalar_t>(),
                               boxes2.size(0), out.ptr<float>());
      })
      default: break;
    }
    return;
  }
  DETCORE_DISPATCH_FLOAT32_64(boxes1.dtype, "box_iou", [&] {
    box_iou_kernel(boxes1.ptr<const scalar_t>(), boxes1.size(0), boxes2.ptr<const scalar_t>(), boxes2.size(0),
                   out.ptr<scalar_t>());
  });
}

}  // namespace detcore::cpu
