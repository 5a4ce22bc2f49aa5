#include "backend/anchors.h"
#include "common.cuh"
#include "detcore/math/anchors.h"

namespace detcore::cuda {
namespace {

// One thread per output value: consecutive threads write consecutive
// coordinates of a location's anchors. The cell anchors come in the kernel
// parameters (the chunk), so nothing is read from device memory.
template <typename T>
__global__ void make_anchors_kernel(const CellAnchorChunk chunk, int64_t width, int64_t num_locations,
                                    int64_t num_anchors, int64_t stride_h, int64_t stride_w, T* __restrict__ out) {
  using A = acc_t<T>;
  const int64_t per_location = int64_t{chunk.count} * 4;
  const int64_t total = num_locations * per_location;
  for (const int64_t k : grid_stride_range(total)) {
    const int64_t loc = k / per_location;
    const int rem = static_cast<int>(k - loc * per_location);
    const int j = rem / 4, c = rem % 4;
    const int64_t y = loc / width, x = loc - y * width;
    out[(loc * num_anchors + chunk.first + j) * 4 + c] =
        math::anchor_coordinate<T, A>(chunk.cells[j], c, x, y, stride_h, stride_w);
  }
}

}  // namespace

void make_anchors(const CellAnchorChunk& chunk, int64_t stride_h, int64_t stride_w, const TensorRef& out,
                  Stream stream) {
  DeviceGuard guard(out);
  const int64_t width = out.size(1), num_locations = out.size(0) * out.size(1);
  const int64_t total = num_locations * chunk.count * 4;
  DETCORE_DISPATCH_CUDA_FLOATING(out.dtype, "make_anchors", [&] {
    make_anchors_kernel<scalar_t><<<blocks_for(total), kThreadsPerBlock, 0, as_cuda_stream(stream)>>>(
        chunk, width, num_locations, out.size(2), stride_h, stride_w, out.ptr<scalar_t>());
  });
  check_launch("make_anchors");
}

}  // namespace detcore::cuda
