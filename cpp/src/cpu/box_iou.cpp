#include "backend/box_iou.h"

#include <vector>

#include "detcore/math/box.h"
#include "detcore/parallel.h"
#include "detcore/math/ceil_div.h"
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

}  // namespace

void box_iou(const TensorRef& boxes1, const TensorRef& boxes2, const TensorRef& out) {
  DETCORE_DISPATCH_FLOAT32_64(boxes1.dtype, "box_iou", [&] {
    box_iou_kernel(boxes1.ptr<const scalar_t>(), boxes1.size(0), boxes2.ptr<const scalar_t>(), boxes2.size(0),
                   out.ptr<scalar_t>());
  });
}

}  // namespace detcore::cpu
