#include "backend/roi_pool.h"

#include <cstdint>
#include <limits>
#include <vector>

#include "detcore/math/roi_pool.h"
#include "detcore/parallel.h"
#include "cpu/float_staging.h"
#include "dispatch.h"

// Both kernels run in parallel over the (image, channel) planes of the input:
// a plane (H * W values, a few hundred KB) stays in cache while every RoI of
// its image is pooled from it, and in the backward pass each plane of
// grad_input is owned by one thread, which adds the RoIs' gradients in RoI
// order: no races, and the same result for any number of threads.

namespace detcore::cpu {
namespace {

using math::RoiPoolSpan;

// No value in the column or bin has beaten the initial maximum yet (the
// entry point ensures H * W <= INT32_MAX, so real indices are smaller).
constexpr int32_t kNone = std::numeric_limits<int32_t>::max();

// RoI indices grouped by batch index, each group in increasing RoI order:
// image n's RoIs are order[first[n] .. first[n + 1]).
struct RoisByImage {
  std::vector<int64_t> order;
  std::vector<int64_t> first;
};

template <typename T>
RoisByImage group_by_image(const T* boxes, int64_t num_rois, int64_t batch_size) {
  RoisByImage groups{std::vector<int64_t>(num_rois), std::vector<int64_t>(batch_size + 1, 0)};
  std::vector<int64_t> image(num_rois);
  for (int64_t k = 0; k < num_rois; ++k) {
    image[k] = math::roi_batch_index(boxes[5 * k], batch_size);  // checked valid by the entry point
    if (image[k] >= 0) ++groups.first[image[k] + 1];
  }
  for (int64_t n = 0; n < batch_size; ++n) groups.first[n + 1] += groups.first[n];
  std::vector<int64_t> next(groups.first.begin(), groups.first.end() - 1);
  for (int64_t k = 0; k < num_rois; ++k) {
    if (image[k] >= 0) groups.order[next[image[k]]++] = k;
  }
  return groups;
}

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

// Pools one RoI from one input plane. The bins of a bin row share their rows,
// so the row pass keeps, per column, the maximum over the bin's rows and the
// index h * W + w of its first occurrence (a loop the compiler vectorizes);
// each bin then takes the largest of its column maxima and, among the
// columns holding it, the smallest index: the first maximum in row-major
// scan order, as a plain scan with `>` finds it.
template <typename T>
void pool_roi_plane(const T* plane, int64_t width, const RoiPoolSpan* rows, int64_t pooled_height,
                    const RoiPoolSpan* cols, int64_t pooled_width, T* out, int32_t* argmax, T* col_max,
                    int32_t* col_index) {
  const T lowest = math::roi_pool_lowest<T>();
  // Column spans are monotone in the bin index: their union is one range.
  const int64_t w_begin = cols[0].begin;
  const int64_t w_end = cols[pooled_width - 1].end;
  for (int64_t ph = 0; ph < pooled_height; ++ph) {
    const RoiPoolSpan r = rows[ph];
    T* out_row = out + ph * pooled_width;
    int32_t* argmax_row = argmax + ph * pooled_width;
    if (r.empty() || w_end <= w_begin) {
      for (int64_t pw = 0; pw < pooled_width; ++pw) {
        out_row[pw] = T(0);
        argmax_row[pw] = -1;
      }
      continue;
    }
    const int64_t span = w_end - w_begin;
    T* __restrict cmax = col_max + w_begin;
    int32_t* __restrict cidx = col_index + w_begin;
    for (int64_t w = 0; w < span; ++w) {
      cmax[w] = lowest;
      cidx[w] = kNone;
    }
    for (int64_t h = r.begin; h < r.end; ++h) {
      const T* __restrict line = plane + h * width + w_begin;
      const int32_t line_index = static_cast<int32_t>(h * width + w_begin);
      for (int64_t w = 0; w < span; ++w) {
        const T v = line[w], m = cmax[w];
        // An all-ones mask where v is greater (never for NaN); written as
        // bit operations because GCC does not vectorize the plain `?:` form.
        const int32_t greater = -static_cast<int32_t>(v > m);
        cmax[w] = greater ? v : m;
        cidx[w] = ((line_index + static_cast<int32_t>(w)) & greater) | (cidx[w] & ~greater);
      }
    }
    for (int64_t pw = 0; pw < pooled_width; ++pw) {
      const RoiPoolSpan c = cols[pw];
      // Two branch-free passes (a running maximum changes too often to
      // predict); column maxima are never NaN.
      T best = c.empty() ? T(0) : lowest;
      for (int64_t w = c.begin; w < c.end; ++w) best = col_max[w] > best ? col_max[w] : best;
      int32_t best_index = kNone;
      for (int64_t w = c.begin; w < c.end; ++w) {
        const int32_t index = col_max[w] == best ? col_index[w] : kNone;
        best_index = index < best_index ? index : best_index;
      }
      out_row[pw] = best;
      argmax_row[pw] = best_index == kNone ? -1 : best_index;
    }
  }
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
        pool_roi_plane(plane, width, &rows[k * pooled_height], pooled_height, &cols[k * pooled_width], pooled_width,
                       out_data + offset, argmax_data + offset, col_max.data(), col_index.data());
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
        for (int64_t b = 0; b < bins; ++b) {
          const int64_t cell = index[offset + b];
          if (cell >= 0 && cell < plane_size) plane[cell] += grad[offset + b];
        }
      }
    }
  });
}

}  // namespace

void roi_pool_forward(const RoIPoolParams& params, const TensorRef& input, const TensorRef& boxes,
                      const TensorRef& out, const TensorRef& argmax) {
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
