// CPU pieces shared by the max-pooling ops (roi_pool, spp_pool): the RoIs
// grouped by image, the max pooling of one plane over row and column spans,
// and the backward scatter of pooled gradients to their argmax cells.
#pragma once

#include <cstdint>
#include <limits>
#include <vector>

#include "detcore/math/max_pool.h"
#include "detcore/math/rois.h"

namespace detcore::cpu::max_pool {

// No value in the column or bin has beaten the initial maximum yet (the
// entry points ensure H * W <= INT32_MAX, so real indices are smaller).
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

// Max-pools the n_rows x n_cols bins of one RoI from one plane into out and
// argmax (row-major). The bins of a bin row share their rows, so the row pass
// keeps, per column, the maximum over the bin's rows and the index h * W + w
// of its first occurrence (a loop the compiler vectorizes); each bin then
// takes the largest of its column maxima and, among the columns holding it,
// the smallest index: the first maximum in row-major scan order, as a plain
// scan with `>` finds it. NaN never wins. Column spans must be monotone in
// the bin index; col_max and col_index are scratch of W values.
template <typename T>
inline void pool_plane(const T* plane, int64_t width, const math::PoolSpan* rows, int64_t n_rows,
                       const math::PoolSpan* cols, int64_t n_cols, T* out, int32_t* argmax, T* col_max,
                       int32_t* col_index) {
  const T lowest = math::max_pool_lowest<T>();
  // Column spans are monotone in the bin index: their union is one range.
  const int64_t w_begin = cols[0].begin;
  const int64_t w_end = cols[n_cols - 1].end;
  for (int64_t ph = 0; ph < n_rows; ++ph) {
    const math::PoolSpan r = rows[ph];
    T* out_row = out + ph * n_cols;
    int32_t* argmax_row = argmax + ph * n_cols;
    if (r.empty() || w_end <= w_begin) {
      for (int64_t pw = 0; pw < n_cols; ++pw) {
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
    for (int64_t pw = 0; pw < n_cols; ++pw) {
      const math::PoolSpan c = cols[pw];
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

// Adds the gradients of `bins` pooled values to the cells of one plane of
// grad_input their argmax points at (-1 and out-of-plane indices skipped).
template <typename T>
inline void scatter_to_argmax(const int32_t* index, const T* grad, int64_t bins, T* plane, int64_t plane_size) {
  for (int64_t b = 0; b < bins; ++b) {
    const int64_t cell = index[b];
    if (cell >= 0 && cell < plane_size) plane[cell] += grad[b];
  }
}

}  // namespace detcore::cpu::max_pool
