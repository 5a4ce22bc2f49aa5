#include <cstdint>
#include <vector>

#include "backend/spp_pool.h"
#include "cpu/float_staging.h"
#include "cpu/max_pool_spans.h"
#include "detcore/math/spp_pool.h"
#include "detcore/parallel.h"
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
using max_pool::group_by_image;
using max_pool::RoisByImage;

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
          max_pool::pool_plane(plane, width, &rows[spans], n, &cols[spans], n, out_data + offset, argmax_data + offset,
                               col_max.data(), col_index.data());
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
          max_pool::scatter_to_argmax(index + offset, grad + offset, bins, plane, plane_size);
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
