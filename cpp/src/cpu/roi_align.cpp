// RoIAlign on the CPU.
//
// The bilinear taps of every (RoI, bin) are computed once, per axis, into a
// sampling plan and reused for all channels (detcore/math/roi_align.h has the
// math). Each pass over a bin's taps serves four channels at once. Threads
// split the work by channel:
//   * forward: items are (group of channels, block of RoIs); each writes its
//     own outputs, and consecutive items read the same feature planes, which
//     stay in cache while many RoIs sample them;
//   * backward: items are (image, group of channels) planes of grad_input; one
//     thread owns those planes and adds the RoIs of that image in index order,
//     so there are no races and the result does not depend on the thread
//     count.
// A huge RoI costs work in proportion to its samples on the map (see
// math::sample_range), not to its sampling grid.
#include <algorithm>
#include <vector>

#include "backend/roi_align.h"
#include "cpu/float_staging.h"
#include "detcore/math/ceil_div.h"
#include "detcore/math/roi_align.h"
#include "detcore/parallel.h"
#include "dispatch.h"

namespace detcore::cpu {
namespace {

// A valid sample along one axis. For the y axis lo and hi are row offsets
// (row * W) into a feature plane, for the x axis column indices.
template <typename T>
struct Tap {
  int64_t lo, hi;
  T w_lo, w_hi;
};

// The taps of one axis for every (RoI, bin): bin p of RoI k owns
// taps[begin[k * pooled + p] .. begin[k * pooled + p + 1]).
template <typename T>
struct AxisPlan {
  std::vector<int64_t> begin;
  std::vector<Tap<T>> taps;

  int64_t first(int64_t k, int64_t pooled, int64_t p) const { return begin[k * pooled + p]; }
  int64_t last(int64_t k, int64_t pooled, int64_t p) const { return begin[k * pooled + p + 1]; }
};

template <typename T>
struct Plan {
  AxisPlan<T> y, x;
  std::vector<T> count;        // the divisor of each RoI's averages
  std::vector<int64_t> batch;  // the image of each RoI
};

// Calls fn(tap) for each valid sample of bin p along one axis.
template <typename T, typename Fn>
void for_each_tap(T start, T bin, int64_t p, int64_t grid, int64_t size, int64_t stride, Fn&& fn) {
  const math::SampleRange range = math::sample_range(start, bin, p, grid, -1.0, static_cast<double>(size));
  for (int64_t i = range.begin; i < range.end; ++i) {
    const auto s = math::axis_sample(math::sample_coordinate(start, bin, p, i, grid), size);
    if (s.valid) fn(Tap<T>{s.lo * stride, s.hi * stride, s.w_lo, s.w_hi});
  }
}

template <typename T>
Plan<T> make_plan(const T* boxes, int64_t num_rois, int64_t height, int64_t width, const RoIAlignParams& p) {
  const int64_t ph = p.pooled_height, pw = p.pooled_width;
  Plan<T> plan;
  plan.count.resize(num_rois);
  plan.batch.resize(num_rois);
  plan.y.begin.assign(num_rois * ph + 1, 0);
  plan.x.begin.assign(num_rois * pw + 1, 0);
  std::vector<math::RoIAlignGeometry<T>> geometry(num_rois);
  const int64_t grain = 64;

  // Pass 1: geometry and the number of taps of each bin.
  parallel_for(num_rois, grain, [&](int64_t begin, int64_t end) {
    for (int64_t k = begin; k < end; ++k) {
      const T* roi = boxes + 5 * k;
      auto& g = geometry[k];
      g = math::roi_align_geometry<T>(roi + 1, static_cast<T>(p.spatial_scale), p.aligned, ph, pw, p.sampling_ratio);
      plan.count[k] = g.count;
      plan.batch[k] = static_cast<int64_t>(roi[0]);  // checked: an integer in [0, N)
      for (int64_t b = 0; b < ph; ++b) {
        int64_t n = 0;
        for_each_tap(g.start_y, g.bin_h, b, g.grid_h, height, width, [&](const Tap<T>&) { ++n; });
        plan.y.begin[k * ph + b + 1] = n;
      }
      for (int64_t b = 0; b < pw; ++b) {
        int64_t n = 0;
        for_each_tap(g.start_x, g.bin_w, b, g.grid_w, width, 1, [&](const Tap<T>&) { ++n; });
        plan.x.begin[k * pw + b + 1] = n;
      }
    }
  });
  for (auto* axis : {&plan.y, &plan.x}) {
    for (size_t i = 1; i < axis->begin.size(); ++i) axis->begin[i] += axis->begin[i - 1];
    axis->taps.resize(axis->begin.back());
  }

  // Pass 2: the taps themselves.
  parallel_for(num_rois, grain, [&](int64_t begin, int64_t end) {
    for (int64_t k = begin; k < end; ++k) {
      const auto& g = geometry[k];
      for (int64_t b = 0; b < ph; ++b) {
        Tap<T>* out = plan.y.taps.data() + plan.y.first(k, ph, b);
        for_each_tap(g.start_y, g.bin_h, b, g.grid_h, height, width, [&](const Tap<T>& t) { *out++ = t; });
      }
      for (int64_t b = 0; b < pw; ++b) {
        Tap<T>* out = plan.x.taps.data() + plan.x.first(k, pw, b);
        for_each_tap(g.start_x, g.bin_w, b, g.grid_w, width, 1, [&](const Tap<T>& t) { *out++ = t; });
      }
    }
  });
  return plan;
}

// RoI indices grouped by image, each group in index order; image n's RoIs
// are order[first[n] .. first[n + 1]).
struct ImageGroups {
  std::vector<int64_t> order, first;
};

ImageGroups group_by_image(const std::vector<int64_t>& batch, int64_t batch_size) {
  ImageGroups groups;
  groups.first.assign(batch_size + 1, 0);
  for (int64_t b : batch) ++groups.first[b + 1];
  for (int64_t n = 0; n < batch_size; ++n) groups.first[n + 1] += groups.first[n];
  groups.order.resize(batch.size());
  std::vector<int64_t> next(groups.first.begin(), groups.first.end() - 1);
  for (size_t k = 0; k < batch.size(); ++k) groups.order[next[batch[k]]++] = static_cast<int64_t>(k);
  return groups;
}

// Pools RoI k over `Channels` consecutive feature planes (plane_size apart)
// into `Channels` outputs (out_stride apart): every bin's taps are loaded once
// for all of them.
template <int Channels, typename T>
void pool_roi(const T* planes, int64_t plane_size, const Plan<T>& plan, int64_t k, int64_t ph, int64_t pw, T* out,
              int64_t out_stride) {
  const T count = plan.count[k];
  for (int64_t by = 0; by < ph; ++by) {
    const Tap<T>* y_first = plan.y.taps.data() + plan.y.first(k, ph, by);
    const Tap<T>* y_last = plan.y.taps.data() + plan.y.last(k, ph, by);
    for (int64_t bx = 0; bx < pw; ++bx) {
      const Tap<T>* x_first = plan.x.taps.data() + plan.x.first(k, pw, bx);
      const Tap<T>* x_last = plan.x.taps.data() + plan.x.last(k, pw, bx);
      T sum[Channels] = {};
      for (const Tap<T>* y = y_first; y < y_last; ++y) {
        T sum_lo[Channels] = {}, sum_hi[Channels] = {};
        for (const Tap<T>* x = x_first; x < x_last; ++x) {
          for (int c = 0; c < Channels; ++c) {
            const T* row_lo = planes + c * plane_size + y->lo;
            const T* row_hi = planes + c * plane_size + y->hi;
            sum_lo[c] += x->w_lo * row_lo[x->lo] + x->w_hi * row_lo[x->hi];
            sum_hi[c] += x->w_lo * row_hi[x->lo] + x->w_hi * row_hi[x->hi];
          }
        }
        for (int c = 0; c < Channels; ++c) sum[c] += y->w_lo * sum_lo[c] + y->w_hi * sum_hi[c];
      }
      for (int c = 0; c < Channels; ++c) out[c * out_stride + by * pw + bx] = sum[c] / count;
    }
  }
}

template <typename T>
void forward_kernel(const T* input, const T* boxes, T* out, int64_t num_rois, int64_t batch_size, int64_t channels,
                    int64_t height, int64_t width, const RoIAlignParams& p) {
  const int64_t ph = p.pooled_height, pw = p.pooled_width, plane_size = height * width;
  const Plan<T> plan = make_plan(boxes, num_rois, height, width, p);
  const ImageGroups groups = group_by_image(plan.batch, batch_size);
  // Items (group of channels, block of RoIs in image order): neighbouring
  // items share channels and mostly an image, so the planes stay in cache.
  constexpr int kChannelsPerItem = 4;
  constexpr int64_t kRoIsPerBlock = 32;
  const int64_t channel_groups = math::ceil_div<int64_t>(channels, kChannelsPerItem);
  const int64_t blocks = math::ceil_div<int64_t>(num_rois, kRoIsPerBlock);
  parallel_for(channel_groups * blocks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {
      const int64_t group = item / blocks;
      const int64_t block = item - group * blocks;
      const int64_t c0 = group * kChannelsPerItem;
      const int64_t stop = std::min(num_rois, (block + 1) * kRoIsPerBlock);
      for (int64_t j = block * kRoIsPerBlock; j < stop; ++j) {
        const int64_t k = groups.order[j];
        const T* planes = input + (plan.batch[k] * channels + c0) * plane_size;
        T* o = out + (k * channels + c0) * ph * pw;
        if (c0 + kChannelsPerItem <= channels) {
          pool_roi<kChannelsPerItem>(planes, plane_size, plan, k, ph, pw, o, ph * pw);
        } else {
          for (int64_t c = 0; c < channels - c0; ++c) {
            pool_roi<1>(planes + c * plane_size, plane_size, plan, k, ph, pw, o + c * ph * pw, ph * pw);
          }
        }
      }
    }
  });
}

// Adds the gradient of RoI k (`Channels` grad_output planes, grad_stride
// apart) to `Channels` grad_input planes (plane_size apart).
template <int Channels, typename T>
void scatter_roi(T* planes, int64_t plane_size, const Plan<T>& plan, int64_t k, int64_t ph, int64_t pw, const T* grad,
                 int64_t grad_stride) {
  const T count = plan.count[k];
  for (int64_t by = 0; by < ph; ++by) {
    const Tap<T>* y_first = plan.y.taps.data() + plan.y.first(k, ph, by);
    const Tap<T>* y_last = plan.y.taps.data() + plan.y.last(k, ph, by);
    for (int64_t bx = 0; bx < pw; ++bx) {
      const Tap<T>* x_first = plan.x.taps.data() + plan.x.first(k, pw, bx);
      const Tap<T>* x_last = plan.x.taps.data() + plan.x.last(k, pw, bx);
      T g[Channels];
      for (int c = 0; c < Channels; ++c) g[c] = grad[c * grad_stride + by * pw + bx] / count;
      for (const Tap<T>* y = y_first; y < y_last; ++y) {
        for (int c = 0; c < Channels; ++c) {
          T* row_lo = planes + c * plane_size + y->lo;
          T* row_hi = planes + c * plane_size + y->hi;
          const T g_lo = g[c] * y->w_lo, g_hi = g[c] * y->w_hi;
          for (const Tap<T>* x = x_first; x < x_last; ++x) {
            row_lo[x->lo] += g_lo * x->w_lo;
            row_lo[x->hi] += g_lo * x->w_hi;
            row_hi[x->lo] += g_hi * x->w_lo;
            row_hi[x->hi] += g_hi * x->w_hi;
          }
        }
      }
    }
  }
}

template <typename T>
void backward_kernel(const T* grad_output, const T* boxes, T* grad_input, int64_t num_rois, int64_t batch_size,
                     int64_t channels, int64_t height, int64_t width, const RoIAlignParams& p) {
  const int64_t ph = p.pooled_height, pw = p.pooled_width, plane_size = height * width;
  const Plan<T> plan = make_plan(boxes, num_rois, height, width, p);
  const ImageGroups groups = group_by_image(plan.batch, batch_size);
  // Items (image, group of channels): a thread owns those grad_input planes.
  constexpr int kChannelsPerItem = 4;
  const int64_t channel_groups = math::ceil_div<int64_t>(channels, kChannelsPerItem);
  parallel_for(batch_size * channel_groups, 1, [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {
      const int64_t n = item / channel_groups;
      const int64_t c0 = (item - n * channel_groups) * kChannelsPerItem;
      const int64_t num_channels = std::min<int64_t>(kChannelsPerItem, channels - c0);
      T* planes = grad_input + (n * channels + c0) * plane_size;
      std::fill(planes, planes + num_channels * plane_size, T(0));
      for (int64_t j = groups.first[n]; j < groups.first[n + 1]; ++j) {
        const int64_t k = groups.order[j];
        const T* g = grad_output + (k * channels + c0) * ph * pw;
        if (num_channels == kChannelsPerItem) {
          scatter_roi<kChannelsPerItem>(planes, plane_size, plan, k, ph, pw, g, ph * pw);
        } else {
          for (int64_t c = 0; c < num_channels; ++c) {
            scatter_roi<1>(planes + c * plane_size, plane_size, plan, k, ph, pw, g + c * ph * pw, ph * pw);
          }
        }
      }
    }
  });
}

}  // namespace

void roi_align_forward(const RoIAlignParams& params, const TensorRef& input, const TensorRef& boxes,
                       const TensorRef& out) {
  if (is_half(input.dtype)) {
    FloatStaging staging;
    cpu::roi_align_forward(params, staging.input(input), staging.input(boxes), staging.output(out));
    staging.finish();
    return;
  }
  DETCORE_DISPATCH_FLOAT32_64(input.dtype, "roi_align", [&] {
    forward_kernel(input.ptr<const scalar_t>(), boxes.ptr<const scalar_t>(), out.ptr<scalar_t>(), boxes.size(0),
                   input.size(0), input.size(1), input.size(2), input.size(3), params);
  });
}

void roi_align_backward(const RoIAlignParams& params, const TensorRef& grad_output, const TensorRef& boxes,
                        const TensorRef& grad_input) {
  if (is_half(grad_input.dtype)) {
    FloatStaging staging;  // the gradients add up in float, rounded once
    cpu::roi_align_backward(params, staging.input(grad_output), staging.input(boxes), staging.output(grad_input));
    staging.finish();
    return;
  }
  DETCORE_DISPATCH_FLOAT32_64(grad_input.dtype, "roi_align_backward", [&] {
    backward_kernel(grad_output.ptr<const scalar_t>(), boxes.ptr<const scalar_t>(), grad_input.ptr<scalar_t>(),
                    boxes.size(0), grad_input.size(0), grad_input.size(1), grad_input.size(2), grad_input.size(3),
                    params);
  });
}

}  // namespace detcore::cpu
