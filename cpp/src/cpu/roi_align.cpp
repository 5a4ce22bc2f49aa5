// RoIAlign on the CPU.
//
// The bilinear taps of every (RoI, bin) are computed once, per axis, into a
// sampling plan and reused for all channels (detcore/math/roi_align.h has the
// math). Threads then split the work by channel:
//   * forward: items are (channel, block of RoIs); each writes its own
//     outputs, and consecutive items read the same feature plane, which stays
//     in cache while many RoIs sample it;
//   * backward: items are (image, channel) planes of grad_input; one thread
//     owns a plane and adds the RoIs of that image in index order, so there
//     are no races and the result does not depend on the thread count.
#include <algorithm>
#include <vector>

#include "backend/roi_align.h"
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
  std::vector<T> count;  // the divisor of each RoI's averages
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

// The average of bin (bin_y, bin_x) of RoI k over one feature plane.
template <typename T>
T pool_bin(const T* plane, const Plan<T>& plan, int64_t k, int64_t ph, int64_t pw, int64_t bin_y, int64_t bin_x) {
  const Tap<T>* x_first = plan.x.taps.data() + plan.x.first(k, pw, bin_x);
  const Tap<T>* x_last = plan.x.taps.data() + plan.x.last(k, pw, bin_x);
  T sum = T(0);
  for (int64_t ty = plan.y.first(k, ph, bin_y), y_end = plan.y.last(k, ph, bin_y); ty < y_end; ++ty) {
    const Tap<T>& y = plan.y.taps[ty];
    const T* row_lo = plane + y.lo;
    const T* row_hi = plane + y.hi;
    T sum_lo = T(0), sum_hi = T(0);
    for (const Tap<T>* x = x_first; x < x_last; ++x) {
      sum_lo += x->w_lo * row_lo[x->lo] + x->w_hi * row_lo[x->hi];
      sum_hi += x->w_lo * row_hi[x->lo] + x->w_hi * row_hi[x->hi];
    }
    sum += y.w_lo * sum_lo + y.w_hi * sum_hi;
  }
  return sum / plan.count[k];
}

template <typename T>
void forward_kernel(const T* input, const T* boxes, T* out, int64_t num_rois, int64_t batch_size, int64_t channels,
                    int64_t height, int64_t width, const RoIAlignParams& p) {
  const int64_t ph = p.pooled_height, pw = p.pooled_width, plane_size = height * width;
  const Plan<T> plan = make_plan(boxes, num_rois, height, width, p);
  const ImageGroups groups = group_by_image(plan.batch, batch_size);
  // Items (channel, block of RoIs in image order): neighbouring items share a
  // channel and mostly an image, so its plane stays in cache.
  constexpr int64_t kRoIsPerBlock = 32;
  const int64_t blocks = (num_rois + kRoIsPerBlock - 1) / kRoIsPerBlock;
  parallel_for(channels * blocks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {
      const int64_t c = item / blocks;
      const int64_t block = item - c * blocks;
      const int64_t stop = std::min(num_rois, (block + 1) * kRoIsPerBlock);
      for (int64_t j = block * kRoIsPerBlock; j < stop; ++j) {
        const int64_t k = groups.order[j];
        const T* plane = input + (plan.batch[k] * channels + c) * plane_size;
        T* o = out + (k * channels + c) * ph * pw;
        for (int64_t by = 0; by < ph; ++by) {
          for (int64_t bx = 0; bx < pw; ++bx) o[by * pw + bx] = pool_bin(plane, plan, k, ph, pw, by, bx);
        }
      }
    }
  });
}

// Adds the gradient of bin (bin_y, bin_x) of RoI k to one grad_input plane.
template <typename T>
void scatter_bin(T* plane, T grad, const Plan<T>& plan, int64_t k, int64_t ph, int64_t pw, int64_t bin_y,
                 int64_t bin_x) {
  const Tap<T>* x_first = plan.x.taps.data() + plan.x.first(k, pw, bin_x);
  const Tap<T>* x_last = plan.x.taps.data() + plan.x.last(k, pw, bin_x);
  for (int64_t ty = plan.y.first(k, ph, bin_y), y_end = plan.y.last(k, ph, bin_y); ty < y_end; ++ty) {
    const Tap<T>& y = plan.y.taps[ty];
    T* row_lo = plane + y.lo;
    T* row_hi = plane + y.hi;
    const T g_lo = grad * y.w_lo, g_hi = grad * y.w_hi;
    for (const Tap<T>* x = x_first; x < x_last; ++x) {
      row_lo[x->lo] += g_lo * x->w_lo;
      row_lo[x->hi] += g_lo * x->w_hi;
      row_hi[x->lo] += g_hi * x->w_lo;
      row_hi[x->hi] += g_hi * x->w_hi;
    }
  }
}

template <typename T>
void backward_kernel(const T* grad_output, const T* boxes, T* grad_input, int64_t num_rois, int64_t batch_size,
                     int64_t channels, int64_t height, int64_t width, const RoIAlignParams& p) {
  const int64_t ph = p.pooled_height, pw = p.pooled_width, plane_size = height * width;
  const Plan<T> plan = make_plan(boxes, num_rois, height, width, p);
  const ImageGroups groups = group_by_image(plan.batch, batch_size);
  parallel_for(batch_size * channels, 1, [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {
      const int64_t n = item / channels;
      const int64_t c = item - n * channels;
      T* plane = grad_input + item * plane_size;
      std::fill(plane, plane + plane_size, T(0));
      for (int64_t j = groups.first[n]; j < groups.first[n + 1]; ++j) {
        const int64_t k = groups.order[j];
        const T* g = grad_output + (k * channels + c) * ph * pw;
        for (int64_t by = 0; by < ph; ++by) {
          for (int64_t bx = 0; bx < pw; ++bx) {
            scatter_bin(plane, g[by * pw + bx] / plan.count[k], plan, k, ph, pw, by, bx);
          }
        }
      }
    }
  });
}

}  // namespace

void roi_align_forward(const TensorRef& input, const TensorRef& boxes, const TensorRef& out,
                       const RoIAlignParams& params) {
  DETCORE_DISPATCH_FLOAT32_64(input.dtype, "roi_align", [&] {
    forward_kernel(input.ptr<const scalar_t>(), boxes.ptr<const scalar_t>(), out.ptr<scalar_t>(), boxes.size(0),
                   input.size(0), input.size(1), input.size(2), input.size(3), params);
  });
}

void roi_align_backward(const TensorRef& grad_output, const TensorRef& boxes, const TensorRef& grad_input,
                        const RoIAlignParams& params) {
  DETCORE_DISPATCH_FLOAT32_64(grad_input.dtype, "roi_align_backward", [&] {
    backward_kernel(grad_output.ptr<const scalar_t>(), boxes.ptr<const scalar_t>(), grad_input.ptr<scalar_t>(),
                    boxes.size(0), grad_input.size(0), grad_input.size(1), grad_input.size(2), grad_input.size(3),
                    params);
  });
}

}  // namespace detcore::cpu
