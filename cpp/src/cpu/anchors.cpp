#include "backend/anchors.h"

#include <algorithm>

#include "detcore/math/anchors.h"
#include "detcore/parallel.h"
#include "dispatch.h"

namespace detcore::cpu {
namespace {

template <typename T>
void make_anchors_kernel(const CellAnchorChunk& chunk, int64_t height, int64_t width, int64_t num_anchors,
                         int64_t stride_h, int64_t stride_w, T* out) {
  // One grid location writes num_anchors * 4 values; chunks of ~16k values.
  const int64_t grain = std::max<int64_t>(1, 16384 / (4 * num_anchors));
  parallel_for(height * width, grain, [&](int64_t begin, int64_t end) {
    for (int64_t loc = begin; loc < end; ++loc) {
      const int64_t y = loc / width, x = loc - y * width;
      T* row = out + (loc * num_anchors + chunk.first) * 4;
      for (int j = 0; j < chunk.count; ++j) {
        for (int c = 0; c < 4; ++c) {
          row[4 * j + c] = math::anchor_coordinate<T, T>(chunk.cells[j], c, x, y, stride_h, stride_w);
        }
      }
    }
  });
}

}  // namespace

void make_anchors(const CellAnchorChunk& chunk, int64_t stride_h, int64_t stride_w, const TensorRef& out) {
  DETCORE_DISPATCH_FLOAT32_64(out.dtype, "make_anchors", [&] {
    make_anchors_kernel(chunk, out.size(0), out.size(1), out.size(2), stride_h, stride_w, out.ptr<scalar_t>());
  });
}

}  // namespace detcore::cpu
