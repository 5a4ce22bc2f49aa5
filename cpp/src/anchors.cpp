#include "detcore/ops/anchors.h"

#include <algorithm>
#include <cmath>

#include "backend/anchors.h"
#include "checks.h"
#include "detcore/math/anchors.h"
#include "dispatch.h"

namespace detcore {
namespace {

// Values become float32 in the math (as in torchvision), so they must be
// positive and finite there too.
void check_positive_float32(const std::vector<double>& values, const char* name) {
  for (size_t i = 0; i < values.size(); ++i) {
    const float v = static_cast<float>(values[i]);
    if (!(v > 0.0f) || !std::isfinite(v)) {
      throw_value_error(name, ": expected positive finite numbers (in float32), got ", values[i], " at index ", i);
    }
  }
}

}  // namespace

void make_anchors(const MakeAnchorsParams& params, const TensorRef& out, Stream stream) {
  const std::vector<double>& sizes = params.sizes;
  const std::vector<double>& aspect_ratios = params.aspect_ratios;
  const int64_t stride_h = params.stride_h, stride_w = params.stride_w;
  check_positive_float32(sizes, "sizes");
  check_positive_float32(aspect_ratios, "aspect_ratios");
  check::positive(stride_h, "stride_h");
  check::positive(stride_w, "stride_w");
  const int64_t num_anchors = static_cast<int64_t>(sizes.size() * aspect_ratios.size());
  check::ndim(out, "out", 4, "(H, W, A, 4)");
  check::shape(out, "out", {out.shape[0], out.shape[1], num_anchors, 4});
  check::floating_half_on_cuda(out, "out");
  if (out.numel() == 0) return;
  check::data(out, "out");

  // Ratio-major order, as torchvision: anchor a has aspect_ratios[a / S], sizes[a % S].
  const int64_t num_sizes = static_cast<int64_t>(sizes.size());
  for (int64_t first = 0; first < num_anchors; first += CellAnchorChunk::kCapacity) {
    CellAnchorChunk chunk;
    chunk.first = first;
    chunk.count = static_cast<int>(std::min<int64_t>(CellAnchorChunk::kCapacity, num_anchors - first));
    for (int j = 0; j < chunk.count; ++j) {
      const int64_t a = first + j;
      chunk.cells[j] =
          math::cell_anchor(static_cast<float>(sizes[a % num_sizes]), static_cast<float>(aspect_ratios[a / num_sizes]));
    }
    DETCORE_DEVICE_DISPATCH(out, "make_anchors", cpu::make_anchors(chunk, stride_h, stride_w, out),
                            cuda::make_anchors(chunk, stride_h, stride_w, out, stream));
  }
}

}  // namespace detcore
