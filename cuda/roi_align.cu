// RoIAlign on CUDA. The geometry and the bilinear samples come from
// detcore/math/roi_align.h, exactly as on the CPU; this file holds only the
// launch geometry, the indexing and the reductions.
//
// Forward: one thread per output element.
// Backward, default: one thread per grad_output element, atomicAdd into a
//   float/double accumulator (grad_input itself for float32/float64; for
//   float16/bfloat16 a float workspace from the caller, converted at the end,
//   so sums keep float precision).
// Backward, deterministic: a gather. A block owns a 16 x 16 tile of one
//   image's plane and a group of channels; it lists the RoIs of that image
//   whose extent may touch the tile, in index order, and each thread sums, for
//   its pixel, the contributions of those RoIs in that order. No atomics: the
//   result is bitwise identical run to run.
// RoIs with an invalid batch index (not an integer in [0, N), NaN) pool to 0
// and get no gradient: checking them on the host would need a device sync.
#include "backend/roi_align.h"
#include "common.cuh"
#include "detcore/math/roi_align.h"

namespace detcore::cuda {
namespace {

using math::AxisSample;
using math::RoIAlignGeometry;
using math::SampleRange;

struct Shape {
  int64_t num_rois, batch, channels, height, width, pooled_h, pooled_w;
};

struct Sampling {
  double spatial_scale;
  int64_t sampling_ratio;
  bool aligned;
};

template <typename A, typename T>
__device__ RoIAlignGeometry<A> geometry_of(const T* roi, const Shape& s, const Sampling& p) {
  A box[4];
  for (int i = 0; i < 4; ++i) box[i] = static_cast<A>(roi[1 + i]);
  return math::roi_align_geometry<A>(box, static_cast<A>(p.spatial_scale), p.aligned, s.pooled_h, s.pooled_w,
                                     p.sampling_ratio);
}

// (RoI, channel, bin row, bin column) of a flat (K, C, PH, PW) index.
struct OutputPosition {
  int64_t k, c, by, bx;
};

__device__ __forceinline__ OutputPosition output_position(int64_t idx, const Shape& s) {
  const int64_t bx = idx % s.pooled_w;
  const int64_t by = (idx / s.pooled_w) % s.pooled_h;
  const int64_t c = (idx / (s.pooled_w * s.pooled_h)) % s.channels;
  return {idx / (s.pooled_w * s.pooled_h * s.channels), c, by, bx};
}

template <typename T>
__global__ void forward_kernel(const T* __restrict__ input, const T* __restrict__ boxes, T* __restrict__ out, Shape s,
                               Sampling p) {
  using A = acc_t<T>;
  const int64_t total = s.num_rois * s.channels * s.pooled_h * s.pooled_w;
  for (const int64_t idx : grid_stride_range(total)) {
    const auto [k, c, by, bx] = output_position(idx, s);
    const T* roi = boxes + 5 * k;
    const int64_t n = math::roi_batch_index(static_cast<A>(roi[0]), s.batch);
    A value = A(0);
    if (n >= 0) {
      const auto g = geometry_of<A>(roi, s, p);
      const T* plane = input + (n * s.channels + c) * s.height * s.width;
      const SampleRange ry = math::sample_range(g.start_y, g.bin_h, by, g.grid_h, -1.0, double(s.height));
      const SampleRange rx = math::sample_range(g.start_x, g.bin_w, bx, g.grid_w, -1.0, double(s.width));
      A sum = A(0);
      for (int64_t iy = ry.begin; iy < ry.end; ++iy) {
        const AxisSample<A> y =
            math::axis_sample(math::sample_coordinate(g.start_y, g.bin_h, by, iy, g.grid_h), s.height);
        if (!y.valid) continue;
        const T* row_lo = plane + y.lo * s.width;
        const T* row_hi = plane + y.hi * s.width;
        for (int64_t ix = rx.begin; ix < rx.end; ++ix) {
          const AxisSample<A> x =
              math::axis_sample(math::sample_coordinate(g.start_x, g.bin_w, bx, ix, g.grid_w), s.width);
          if (!x.valid) continue;
          sum += y.w_lo * (x.w_lo * static_cast<A>(row_lo[x.lo]) + x.w_hi * static_cast<A>(row_lo[x.hi])) +
                 y.w_hi * (x.w_lo * static_cast<A>(row_hi[x.lo]) + x.w_hi * static_cast<A>(row_hi[x.hi]));
        }
      }
      value = sum / g.count;
    }
    out[idx] = static_cast<T>(value);
  }
}

// Scatters each grad_output element over its samples with atomics into
// `accum` (A = float or double), laid out like grad_input.
template <typename T, typename A>
__global__ void backward_atomic_kernel(const T* __restrict__ grad_output, const T* __restrict__ boxes,
                                       A* __restrict__ accum, Shape s, Sampling p) {
  const int64_t total = s.num_rois * s.channels * s.pooled_h * s.pooled_w;
  for (const int64_t idx : grid_stride_range(total)) {
    const auto [k, c, by, bx] = output_position(idx, s);
    const T* roi = boxes + 5 * k;
    const int64_t n = math::roi_batch_index(static_cast<A>(roi[0]), s.batch);
    if (n < 0) continue;
    const auto g = geometry_of<A>(roi, s, p);
    const A grad = static_cast<A>(grad_output[idx]) / g.count;
    A* plane = accum + (n * s.channels + c) * s.height * s.width;
    const SampleRange ry = math::sample_range(g.start_y, g.bin_h, by, g.grid_h, -1.0, double(s.height));
    const SampleRange rx = math::sample_range(g.start_x, g.bin_w, bx, g.grid_w, -1.0, double(s.width));
    for (int64_t iy = ry.begin; iy < ry.end; ++iy) {
      const AxisSample<A> y =
          math::axis_sample(math::sample_coordinate(g.start_y, g.bin_h, by, iy, g.grid_h), s.height);
      if (!y.valid) continue;
      A* row_lo = plane + y.lo * s.width;
      A* row_hi = plane + y.hi * s.width;
      const A g_lo = grad * y.w_lo, g_hi = grad * y.w_hi;
      for (int64_t ix = rx.begin; ix < rx.end; ++ix) {
        const AxisSample<A> x =
            math::axis_sample(math::sample_coordinate(g.start_x, g.bin_w, bx, ix, g.grid_w), s.width);
        if (!x.valid) continue;
        atomicAdd(row_lo + x.lo, g_lo * x.w_lo);
        atomicAdd(row_lo + x.hi, g_lo * x.w_hi);
        atomicAdd(row_hi + x.lo, g_hi * x.w_lo);
        atomicAdd(row_hi + x.hi, g_hi * x.w_hi);
      }
    }
  }
}

template <typename T>
__global__ void convert_kernel(const float* __restrict__ from, T* __restrict__ to, int64_t n) {
  for (const int64_t i : grid_stride_range(n)) {
    to[i] = static_cast<T>(from[i]);
  }
}

// --- deterministic gather ------------------------------------------------------------------

constexpr int kTile = 16;                      // a block covers kTile x kTile pixels
constexpr int kGatherThreads = kTile * kTile;  // one thread per pixel of the tile
constexpr int kChannelsPerBlock = 8;           // accumulators per thread
constexpr int kWarps = kGatherThreads / 32;

// The weight with which the sample (lo, hi, w_lo, w_hi) reaches `pixel`.
template <typename A>
__device__ A weight_at(const AxisSample<A>& s, int64_t pixel) {
  return (s.lo == pixel ? s.w_lo : A(0)) + (s.hi == pixel ? s.w_hi : A(0));
}

// Rows (or columns) [first, last] that samples in [lo, hi] can touch,
// conservatively; the whole axis when the extent is not finite.
__device__ void touched_span(double lo, double hi, int64_t size, int64_t* first, int64_t* last) {
  *first = 0;
  *last = size - 1;
  if (!(lo - lo == 0.0) || !(hi - hi == 0.0)) return;
  if (lo > hi) {
    const double t = lo;
    lo = hi;
    hi = t;
  }
  const double f = floor(lo) - 1.0, l = floor(hi) + 2.0;
  if (l < 0.0)
    *last = -1;  // entirely above / left of the map
  else if (l < double(size - 1))
    *last = int64_t(l);
  if (f > double(size - 1))
    *first = size;  // entirely below / right of the map
  else if (f > 0.0)
    *first = int64_t(f);
}

template <typename T>
__global__ void __launch_bounds__(kGatherThreads)
    backward_gather_kernel(const T* __restrict__ grad_output, const T* __restrict__ boxes, T* __restrict__ grad_input,
                           Shape s, Sampling p) {
  using A = acc_t<T>;
  __shared__ RoIAlignGeometry<A> roi_geometry[kGatherThreads];
  __shared__ int64_t roi_index[kGatherThreads];
  __shared__ int warp_counts[kWarps];

  const int64_t tiles_x = math::ceil_div<int64_t>(s.width, kTile);
  const int64_t tiles_y = math::ceil_div<int64_t>(s.height, kTile);
  const int64_t groups = math::ceil_div<int64_t>(s.channels, kChannelsPerBlock);
  const int64_t total_blocks = s.batch * groups * tiles_y * tiles_x;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;

  for (int64_t block = blockIdx.x; block < total_blocks; block += gridDim.x) {
    const int64_t tx = block % tiles_x;
    const int64_t ty = (block / tiles_x) % tiles_y;
    const int64_t group = (block / (tiles_x * tiles_y)) % groups;
    const int64_t n = block / (tiles_x * tiles_y * groups);
    const int64_t px = tx * kTile + threadIdx.x % kTile;
    const int64_t py = ty * kTile + threadIdx.x / kTile;
    const bool inside = px < s.width && py < s.height;
    const int64_t c0 = group * kChannelsPerBlock;
    const int64_t tile_x0 = tx * kTile, tile_x1 = min(tile_x0 + kTile, s.width) - 1;
    const int64_t tile_y0 = ty * kTile, tile_y1 = min(tile_y0 + kTile, s.height) - 1;
    // Pixel windows that samples reaching this pixel lie in (see sample_range).
    const double y_lower = py == 0 ? -1.0 : double(py - 1),
                 y_upper = py == s.height - 1 ? double(s.height) : double(py + 1);
    const double x_lower = px == 0 ? -1.0 : double(px - 1),
                 x_upper = px == s.width - 1 ? double(s.width) : double(px + 1);

    A acc[kChannelsPerBlock];
    for (int i = 0; i < kChannelsPerBlock; ++i) acc[i] = A(0);

    for (int64_t chunk = 0; chunk < s.num_rois; chunk += kGatherThreads) {
      // 1. Which RoIs of this chunk belong to image n and may touch the tile.
      const int64_t k = chunk + threadIdx.x;
      bool keep = false;
      RoIAlignGeometry<A> g{};
      if (k < s.num_rois && math::roi_batch_index(static_cast<A>(boxes[5 * k]), s.batch) == n) {
        g = geometry_of<A>(boxes + 5 * k, s, p);
        int64_t y0, y1, x0, x1;
        touched_span(double(g.start_y), double(g.start_y) + double(g.bin_h) * double(s.pooled_h), s.height, &y0, &y1);
        touched_span(double(g.start_x), double(g.start_x) + double(g.bin_w) * double(s.pooled_w), s.width, &x0, &x1);
        keep = y0 <= tile_y1 && y1 >= tile_y0 && x0 <= tile_x1 && x1 >= tile_x0;
      }
      // 2. Compact them in index order: warp ballots, then warp offsets.
      const unsigned ballot = __ballot_sync(0xffffffffu, keep);
      if (lane == 0) warp_counts[warp] = __popc(ballot);
      __syncthreads();
      int offset = __popc(ballot & ((1u << lane) - 1u)), kept = 0;
      for (int w = 0; w < kWarps; ++w) {
        if (w < warp) offset += warp_counts[w];
        kept += warp_counts[w];
      }
      if (keep) {
        roi_geometry[offset] = g;
        roi_index[offset] = k;
      }
      __syncthreads();
      // 3. Each pixel adds what those RoIs' samples give it, in order.
      if (inside) {
        for (int j = 0; j < kept; ++j) {
          const RoIAlignGeometry<A> r = roi_geometry[j];
          const T* grad = grad_output + roi_index[j] * s.channels * s.pooled_h * s.pooled_w;
          for (int64_t by = 0; by < s.pooled_h; ++by) {
            const SampleRange ry = math::sample_range(r.start_y, r.bin_h, by, r.grid_h, y_lower, y_upper);
            for (int64_t iy = ry.begin; iy < ry.end; ++iy) {
              const A wy = weight_at(
                  math::axis_sample(math::sample_coordinate(r.start_y, r.bin_h, by, iy, r.grid_h), s.height), py);
              if (wy == A(0)) continue;
              for (int64_t bx = 0; bx < s.pooled_w; ++bx) {
                const SampleRange rx = math::sample_range(r.start_x, r.bin_w, bx, r.grid_w, x_lower, x_upper);
                for (int64_t ix = rx.begin; ix < rx.end; ++ix) {
                  const A wx = weight_at(
                      math::axis_sample(math::sample_coordinate(r.start_x, r.bin_w, bx, ix, r.grid_w), s.width), px);
                  if (wx == A(0)) continue;
                  const A w = wy * wx / r.count;
                  const T* g_bin = grad + by * s.pooled_w + bx;
                  for (int i = 0; i < kChannelsPerBlock; ++i) {
                    if (c0 + i < s.channels) {
                      acc[i] += static_cast<A>(g_bin[(c0 + i) * s.pooled_h * s.pooled_w]) * w;
                    }
                  }
                }
              }
            }
          }
        }
      }
      __syncthreads();  // the lists are rewritten by the next chunk
    }
    if (inside) {
      for (int i = 0; i < kChannelsPerBlock; ++i) {
        if (c0 + i < s.channels) {
          grad_input[((n * s.channels + c0 + i) * s.height + py) * s.width + px] = static_cast<T>(acc[i]);
        }
      }
    }
  }
}

Shape shape_of(const TensorRef& features, const TensorRef& boxes, const RoIAlignParams& params) {
  return Shape{boxes.size(0),    features.size(0),     features.size(1),   features.size(2),
               features.size(3), params.pooled_height, params.pooled_width};
}

Sampling sampling_of(const RoIAlignParams& params) {
  return Sampling{params.spatial_scale, params.sampling_ratio, params.aligned};
}

template <typename T>
constexpr bool is_half() {
  return sizeof(T) == 2;
}

}  // namespace

void roi_align_forward(const RoIAlignParams& params, const TensorRef& input, const TensorRef& boxes,
                       const TensorRef& out, Stream stream) {
  DeviceGuard guard(input);
  const Shape s = shape_of(input, boxes, params);
  DETCORE_DISPATCH_CUDA_FLOATING(input.dtype, "roi_align", [&] {
    forward_kernel<scalar_t><<<blocks_for(out.numel()), kThreadsPerBlock, 0, as_cuda_stream(stream)>>>(
        input.ptr<const scalar_t>(), boxes.ptr<const scalar_t>(), out.ptr<scalar_t>(), s, sampling_of(params));
  });
  check_launch("roi_align");
}

void roi_align_backward(const RoIAlignParams& params, const TensorRef& grad_output, const TensorRef& boxes,
                        const TensorRef& grad_input, const TensorRef& workspace, Stream stream) {
  const bool deterministic = params.deterministic;
  DeviceGuard guard(grad_input);
  const Shape s = shape_of(grad_input, boxes, params);
  const cudaStream_t cu_stream = as_cuda_stream(stream);
  const int64_t numel = grad_input.numel();
  DETCORE_DISPATCH_CUDA_FLOATING(grad_input.dtype, "roi_align_backward", [&] {
    if (deterministic) {
      const int64_t tiles = math::ceil_div<int64_t>(s.height, kTile) * math::ceil_div<int64_t>(s.width, kTile);
      const int64_t blocks = s.batch * math::ceil_div<int64_t>(s.channels, kChannelsPerBlock) * tiles;
      backward_gather_kernel<scalar_t><<<blocks_for(blocks, 1), kGatherThreads, 0, cu_stream>>>(
          grad_output.ptr<const scalar_t>(), boxes.ptr<const scalar_t>(), grad_input.ptr<scalar_t>(), s,
          sampling_of(params));
      return;
    }
    using A = acc_t<scalar_t>;
    // float32/float64 accumulate in place; the half types in the float workspace.
    A* accum = is_half<scalar_t>() ? workspace.ptr<A>() : grad_input.ptr<A>();
    check_cuda(cudaMemsetAsync(accum, 0, numel * sizeof(A), cu_stream), "roi_align_backward");
    if (grad_output.numel() > 0) {
      backward_atomic_kernel<scalar_t, A><<<blocks_for(grad_output.numel()), kThreadsPerBlock, 0, cu_stream>>>(
          grad_output.ptr<const scalar_t>(), boxes.ptr<const scalar_t>(), accum, s, sampling_of(params));
    }
    if constexpr (is_half<scalar_t>()) {
      convert_kernel<scalar_t><<<blocks_for(numel), kThreadsPerBlock, 0, cu_stream>>>(
          workspace.ptr<const float>(), grad_input.ptr<scalar_t>(), numel);
    }
  });
  check_launch("roi_align_backward");
}

}  // namespace detcore::cuda
