#include "backend/roi_pool.h"

#include <cstdint>
#include <vector>

#include "cpu/float_staging.h"
#include "cpu/max_pool_spans.h"
#include "detcore/math/roi_pool.h"
#include "detcore/parallel.h"
#include "dispatch.h"

// Both kernels run in parallel over the (image, channel) planes of the input:
// a plane (H * W values, a few hundred KB) stays in cache while every RoI of
// its image is pooled from it, and in the backward pass each plane of
// grad_input is owned by one thread, which adds the RoIs' gradients in RoI
// order: no races, and the same result for any number of threads.

namespace detcore::cpu {
namespace {

using math::RoiPoolSpan;
using max_pool::group_by_image;
using max_pool::RoisByImage;

// Each RoI's pooled block (one channel) is small and far from the previous
// RoI's: fetching a few RoIs ahead keeps the loops from waiting on memory.
constexpr int64_t kPrefetchAhead = 8;
constexpr int64_t kValuesPerLine = 16;  // 4-byte values per 64-byte cache line

template <int kWrite>
inline void prefetch_block(const void* p, int64_t count) {
#if defined(__GNUC__)
  for (int64_t i = 0; i < count; i += kValuesPerLine) __builtin_prefetch(static_cast<const int32_t*>(p) + i, kWrite);
#else
  (void)p;
  (void)count;
#endif
}

template <typename T>
void forward_kernel(const TensorRef& input, const TensorRef& boxes_ref, double spatial_scale, const TensorRef& out,
                    const TensorRef& argmax) {
  const int64_t batch = input.size(0), channels = input.size(1), height = input.size(2), width = input.size(3);
  const int64_t num_rois = boxes_ref.size(0), pooled_height = out.size(2), pooled_width = out.size(3);
  const T* boxes = boxes_ref.ptr<const T>();
  const T scale = static_cast<T>(spatial_scale);

  // The bin spans of every RoI, computed once and shared by all channels.
  std::vector<RoiPoolSpan> rows(num_rois * pooled_height), cols(num_rois * pooled_width);
  for (int64_t k = 0; k < num_rois; ++k) {
    const T* b = boxes + 5 * k;
    const auto grid = math::roi_pool_grid(b[1], b[2], b[3], b[4], scale, pooled_height, pooled_width);
    for (int64_t ph = 0; ph < pooled_height; ++ph) rows[k * pooled_height + ph] = math::roi_pool_rows(grid, ph, height);
    for (int64_t pw = 0; pw < pooled_width; ++pw) cols[k * pooled_width + pw] = math::roi_pool_cols(grid, pw, width);
  }
  const RoisByImage groups = group_by_image(boxes, num_rois, batch);

  const T* in = input.ptr<const T>();
  T* out_data = out.ptr<T>();
  int32_t* argmax_data = argmax.ptr<int32_t>();
  const int64_t bins = pooled_height * pooled_width;
  parallel_for(batch * channels, 1, [&](int64_t begin, int64_t end) {
    std::vector<T> col_max(width);
    std::vector<int32_t> col_index(width);
    for (int64_t plane_index = begin; plane_index < end; ++plane_index) {
      const int64_t n = plane_index / channels, c = plane_index % channels;
      const T* plane = in + plane_index * height * width;
      const int64_t group_end = groups.first[n + 1];
      for (int64_t g = groups.first[n]; g < group_end; ++g) {
        const int64_t k = groups.order[g];
        const int64_t offset = (k * channels + c) * bins;
        if (g + kPrefetchAhead < group_end) {
          const int64_t ahead = (groups.order[g + kPrefetchAhead] * channels + c) * bins;
          prefetch_block<1>(out_data + ahead, bins * sizeof(T) / sizeof(int32_t));
          prefetch_block<1>(argmax_data + ahead, bins);
        }
        max_pool::pool_plane(plane, width, &rows[k * pooled_height], pooled_height, &cols[k * pooled_width],
                             pooled_width, out_data + offset, argmax_data + offset, col_max.data(), col_index.data());
      }
    }
  });
}

template <typename T>
void backward_kernel(const TensorRef& grad_out, const TensorRef& boxes, const TensorRef& argmax,
                     const TensorRef& grad_input) {
  const int64_t batch = grad_input.size(0), channels = grad_input.size(1);
  const int64_t plane_size = grad_input.size(2) * grad_input.size(3);
  const int64_t bins = grad_out.size(2) * grad_out.size(3);
  const RoisByImage groups = group_by_image(boxes.ptr<const T>(), boxes.size(0), batch);
  const T* grad = grad_out.ptr<const T>();
  const int32_t* index = argmax.ptr<const int32_t>();
  T* grad_in = grad_input.ptr<T>();
  parallel_for(batch * channels, 1, [&](int64_t begin, int64_t end) {
    for (int64_t plane_index = begin; plane_index < end; ++plane_index) {
      const int64_t n = plane_index / channels, c = plane_index % channels;
      T* plane = grad_in + plane_index * plane_size;
      for (int64_t i = 0; i < plane_size; ++i) plane[i] = T(0);
      const int64_t group_end = groups.first[n + 1];
      for (int64_t g = groups.first[n]; g < group_end; ++g) {
        const int64_t offset = (groups.order[g] * channels + c) * bins;
        if (g + kPrefetchAhead < group_end) {
          const int64_t ahead = (groups.order[g + kPrefetchAhead] * channels + c) * bins;
          prefetch_block<0>(index + ahead, bins);
          prefetch_block<0>(grad + ahead, bins * sizeof(T) / sizeof(int32_t));
        }
        max_pool::scatter_to_argmax(index + offset, grad + offset, bins, plane, plane_size);
      }
    }
  });
}

}  // namespace

void roi_pool_forward(const RoIPoolParams& params, const TensorRef& input, const TensorRef& boxes, const TensorRef& out,
                      const TensorRef& argmax) {
  if (is_half(input.dtype)) {
    FloatStaging staging;  // the maxima are half values: exact in float and back
    cpu::roi_pool_forward(params, staging.input(input), staging.input(boxes), staging.output(out), argmax);
    staging.finish();
    return;
  }
  DETCORE_DISPATCH_FLOAT32_64(input.dtype, "roi_pool",
                              [&] { forward_kernel<scalar_t>(input, boxes, params.spatial_scale, out, argmax); });
}

void roi_pool_backward(const RoIPoolParams& params, const TensorRef& grad_out, const TensorRef& boxes,
                       const TensorRef& argmax, const TensorRef& grad_input) {
  if (is_half(grad_input.dtype)) {
    FloatStaging staging;  // the gradients add up in float, rounded once
    cpu::roi_pool_backward(params, staging.input(grad_out), staging.input(boxes), argmax, staging.output(grad_input));
    staging.finish();
    return;
  }
  DETCORE_DISPATCH_FLOAT32_64(grad_out.dtype, "roi_pool_backward",
                              [&] { backward_kernel<scalar_t>(grad_out, boxes, argmax, grad_input); });
}

}  // namespace detcore::cpu
