// Backend entry points of make_anchors; arguments are already checked.
#pragma once

#include <cstdint>

#include "detcore/math/box.h"
#include "detcore/tensor.h"

namespace detcore {

// Up to kCapacity cell anchors, computed on the host and passed to the kernels
// by value (a CUDA kernel parameter), so no device memory is read. The entry
// point walks the A anchors of a level in chunks.
struct CellAnchorChunk {
  static constexpr int kCapacity = 64;
  math::Box<float> cells[kCapacity];
  int count = 0;      // cell anchors in this chunk
  int64_t first = 0;  // index of cells[0] among the A anchors of a location
};

}  // namespace detcore

namespace detcore::cpu {
void make_anchors(const CellAnchorChunk& chunk, int64_t stride_h, int64_t stride_w, const TensorRef& out);
}

namespace detcore::cuda {
void make_anchors(const CellAnchorChunk& chunk, int64_t stride_h, int64_t stride_w, const TensorRef& out,
                  Stream stream);
}
