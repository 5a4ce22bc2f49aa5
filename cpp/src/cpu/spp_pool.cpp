#include <cstdint>
#include <limits>
#include <vector>

#include "backend/spp_pool.h"
#include "detcore/math/spp_pool.h"
#include "detcore/parallel.h"
#include "cpu/float_staging.h"
#include "dispatch.h"

// The forward runs in parallel over RoIs, each writing its own output row.
// The backward runs in parallel over the (image, channel) planes of
// grad_input: each plane is owned by one thread, which adds the RoIs'
// gradients in RoI order (no races, the same result for any number of
// threads).

namespace detcore::cpu {
namespace {

using math::SppLevels;
using math::SppSpan;

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

// No value in a column has beaten the initial maximum yet (the entry point
// ensures H * W <= INT32_MAX, so real indices are smaller).
constexpr int32_t kNone = std::numeric_limits<int32_t>::max();

// Max-pools the n x n bins of one level of one RoI from one plane. The bins
// of a bin row share their rows, so a row pass keeps, per column, the
// maximum over the bin's rows and the index h * W + w of its first
// occurrence (a loop the compiler vectorizes); each bin then takes the
// largest of its column maxima and, among the columns holding it, the
// smallest index: the first maximum in row-major scan order, as a plain
// `>` scan finds it. NaN never wins.
template <typename T>
void pool_level(const T* plane, int64_t width, const SppSpan* rows, const SppSpan* cols, int64_t n, T* out,
                int32_t* argmax, T* col_max, int32_t* col_index) {
  const T lowest = math::spp_pool_lowest<T>();
  // Column spans are monotone in the bin index: their union is one range.
  const int64_t w_begin = cols[0].begin, w_end = cols[n - 1].end;
  for (int64_t ph = 0; ph < n; ++ph) {
    const SppSpan r = rows[ph];
    T* out_row = out + ph * n;
    int32_t* argmax_row = argmax + ph * n;
    if (r.empty() || w_end <= w_begin) {
      for (int64_t pw = 0; pw < n; ++pw) {
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
        // All ones where v is greater (never for NaN); bit operations
        // because GCC does not vectorize the plain `?:` form.
        const int32_t greater = -static_cast<int32_t>(v > m);
        cmax[w] = greater ? v : m;
        cidx[w] = ((line_index + static_cast<int32_t>(w)) & greater) | (cidx[w] & ~greater);
      }
    }
    for (int64_t pw = 0; pw < n; ++pw) {
      const SppSpan c = cols[pw];
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
void forward_kernel(const SppLevels& levels, double spatial_scale, const TensorRef& input, const TensorRef& boxes_ref,
                    const TensorRef& out, const TensorRef& argmax) {
  const int64_t batch = input.size(0), channels = input.size(1), height = input.size(2), width = input.size(3);
  const int64_t num_rois = boxes_ref.size(0);
  const int64_t sides = levels.first_side[levels.count];
  const int64_t row_size = channels * levels.first_bin[levels.count];
  const T* boxes = boxes_ref.ptr<const T>();
  const T scale = static_cast<T>(spatial_scale);

  // The bin spans of every RoI and level, computed once for all channels.
  std::vector<SppSpan> rows(num_rois * sides), cols(num_rois * sides);
  for (int64_t k = 0; k < num_rois; ++k) {
    const T* b = boxes + 5 * k;
    const math::SppGrid grid = math::spp_pool_grid(b[1], b[2], b[3], b[4], scale);
    for (int level = 0; level < levels.count; ++level) {
      const int64_t n = levels.size[level], base = k * sides + levels.first_side[level];
      for (int64_t i = 0; i < n; ++i) {
        rows[base + i] = math::spp_pool_rows(grid, i, n, height);
        cols[base + i] = math::spp_pool_cols(grid, i, n, width);
      }
    }
  }
  const T* in = input.ptr<const T>();
  T* out_data = out.ptr<T>();
  int32_t* argmax_data = argmax.ptr<int32_t>();
  // In parallel over RoIs: each writes its own output row (C * bins values)
  // in order, while its image's features, a few MB, stay in cache.
  parallel_for(num_rois, 1, [&](int64_t begin, int64_t end) {
    std::vector<T> col_max(width);
    std::vector<int32_t> col_index(width);
    for (int64_t k = begin; k < end; ++k) {
      const int64_t image = math::roi_batch_index(boxes[5 * k], batch);  // checked valid by the entry point
      for (int64_t c = 0; c < channels; ++c) {
        const T* plane = in + (image * channels + c) * height * width;
        for (int level = 0; level < levels.count; ++level) {
          const int64_t n = levels.size[level];
          const int64_t offset = k * row_size + channels * levels.first_bin[level] + c * n * n;
          const int64_t spans = k * sides + levels.first_side[level];
          pool_level(plane, width, &rows[spans], &cols[spans], n, out_data + offset, argmax_data + offset, col_max.data(),
                     col_index.data());
        }
      }
    }
  });
}

template <typename T>
void backward_kernel(const SppLevels& levels, const TensorRef& grad_out, const TensorRef& boxes,
                     const TensorRef& argmax, const TensorRef& grad_input) {
  const int64_t batch = grad_input.size(0), channels = grad_input.size(1);
  const int64_t plane_size = grad_input.size(2) * grad_input.size(3);
  const int64_t row_size = channels * levels.first_bin[levels.count];
  const RoisByImage groups = group_by_image(boxes.ptr<const T>(), boxes.size(0), batch);
  const T* grad = grad_out.ptr<const T>();
  const int32_t* index = argmax.ptr<const int32_t>();
  T* grad_in = grad_input.ptr<T>();
  parallel_for(batch * channels, 1, [&](int64_t begin, int64_t end) {
    for (int64_t plane_index = begin; plane_index < end; ++plane_index) {
      const int64_t n_image = plane_index / channels, c = plane_index % channels;
      T* plane = grad_in + plane_index * plane_size;
      for (int64_t i = 0; i < plane_size; ++i) plane[i] = T(0);
      for (int64_t g = groups.first[n_image]; g < groups.first[n_image + 1]; ++g) {
        const int64_t k = groups.order[g];
        for (int level = 0; level < levels.count; ++level) {
          const int64_t bins = levels.size[level] * levels.size[level];
          const int64_t offset = k * row_size + channels * levels.first_bin[level] + c * bins;
          for (int64_t b = 0; b < bins; ++b) {
            const int64_t cell = index[offset + b];
            if (cell >= 0 && cell < plane_size) plane[cell] += grad[offset + b];
          }
        }
      }
    }
  });
}

}  // namespace

void spp_pool_forward(const SppLevels& levels, double spatial_scale, const TensorRef& input, const TensorRef& boxes,
                      const TensorRef& out, const TensorRef& argmax) {
  if (is_half(input.dtype)) {
    FloatStaging staging;  // the maxima are half values: exact in float and back
    cpu::spp_pool_forward(levels, spatial_scale, staging.input(input), staging.input(boxes), staging.output(out),
                          argmax);
    staging.finish();
    return;
  }
  DETCORE_DISPATCH_FLOAT32_64(input.dtype, "spp_pool",
                              [&] { forward_kernel<scalar_t>(levels, spatial_scale, input, boxes, out, argmax); });
}

void spp_pool_backward(const SppLevels& levels, const TensorRef& grad_out, const TensorRef& boxes,
                       const TensorRef& argmax, const TensorRef& grad_input) {
  if (is_half(grad_out.dtype)) {
    FloatStaging staging;  // the gradients add up in float, rounded once
    cpu::spp_pool_backward(levels, staging.input(grad_out), staging.input(boxes), argmax, staging.output(grad_input));
    staging.finish();
    return;
  }
  DETCORE_DISPATCH_FLOAT32_64(grad_out.dtype, "spp_pool_backward",
                              [&] { backward_kernel<scalar_t>(levels, grad_out, boxes, argmax, grad_input); });
}

}  // namespace detcore::cpu
