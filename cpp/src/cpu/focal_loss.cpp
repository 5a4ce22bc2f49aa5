// CPU sigmoid focal loss: one pass over the logits writes the loss (or adds
// it to the reduction) and, when asked, the gradient.
//
// Sum and Mean are deterministic: the elements are cut into chunks of a fixed
// size (whole rows with labels); within a chunk, element k is added in double
// to accumulator k mod 16 (which lets the loop vectorize) and the 16
// accumulators are added in a fixed order; the chunk sums are added in chunk
// order after the parallel loop. Which thread runs a chunk, or how many
// threads there are, never changes a bit of the result.
#include <algorithm>
#include <limits>
#include <vector>

#include "backend/focal_loss.h"
#include "detcore/errors.h"
#include "detcore/math/ceil_div.h"
#include "detcore/math/focal_loss.h"
#include "detcore/parallel.h"
#include "dispatch.h"
#include "simd_clones.h"

namespace detcore::cpu {
namespace {

using math::GammaKind;

// Elements per reduction chunk (~ a hundred microseconds of work).
constexpr int64_t kChunkElements = 16384;
// Accumulators per span; also the block the inner loop vectorizes over.
constexpr int kLanes = 16;

template <typename T>
struct Outputs {
  T* loss;  // per element (Reduction::None), else nullptr
  T* grad;  // nullptr when no gradient is wanted
  T grad_scale;
};

// Loss (and gradient) of the n elements x[0, n) against float targets t;
// writes them at out.loss / out.grad offset by `offset` and returns their sum
// when kReduce.
template <typename T, GammaKind G, bool kGrad, bool kReduce>
DETCORE_SIMD_CLONES double focal_span(const T* x, const T* t, int64_t offset, int64_t n,
                                      const math::FocalParams<T>& params, const Outputs<T>& out) {
  T* loss = kReduce ? nullptr : out.loss + offset;
  T* grad = kGrad ? out.grad + offset : nullptr;
  double lanes[kLanes] = {};
  int64_t k = 0;
  for (; k + kLanes <= n; k += kLanes) {
    T block[kLanes];
    for (int j = 0; j < kLanes; ++j) {
      const auto term = math::sigmoid_focal_term<G, kGrad>(x[k + j], t[k + j], params);
      block[j] = term.loss;
      if constexpr (kGrad) grad[k + j] = term.dloss_dx * out.grad_scale;
    }
    for (int j = 0; j < kLanes; ++j) {
      if constexpr (kReduce) {
        lanes[j] += static_cast<double>(block[j]);
      } else {
        loss[k + j] = block[j];
      }
    }
  }
  for (int j = 0; k < n; ++k, ++j) {
    const auto term = math::sigmoid_focal_term<G, kGrad>(x[k], t[k], params);
    if constexpr (kReduce) {
      lanes[j] += static_cast<double>(term.loss);
    } else {
      loss[k] = term.loss;
    }
    if constexpr (kGrad) grad[k] = term.dloss_dx * out.grad_scale;
  }
  if constexpr (!kReduce) return 0.0;
  for (int width = kLanes / 2; width > 0; width /= 2) {
    for (int j = 0; j < width; ++j) lanes[j] += lanes[j + width];
  }
  return lanes[0];
}

// Checks every label is <= C and counts the rows that are not ignored.
int64_t count_valid_rows(const int64_t* labels, int64_t rows, int64_t classes) {
  int64_t valid = 0;
  for (int64_t i = 0; i < rows; ++i) {
    if (labels[i] > classes) {
      throw_value_error("targets: expected labels in [0, ", classes, "] (", classes,
                        " = background) or negative (ignored), got ", labels[i], " at index ", i);
    }
    valid += labels[i] >= 0;
  }
  return valid;
}

template <typename T, GammaKind G, bool kGrad, bool kReduce>
void focal_loss_kernel(const FocalLossArgs& args, const math::FocalParams<T>& params, const Outputs<T>& out,
                       double count) {
  const int64_t n = args.inputs.numel();
  const T* x = args.inputs.ptr<const T>();
  // Work units: elements, or whole rows with labels.
  const int64_t classes = args.labels ? args.inputs.size(1) : 1;
  const int64_t units = args.labels ? args.inputs.size(0) : n;
  const int64_t units_per_chunk = std::max<int64_t>(1, kChunkElements / std::max<int64_t>(classes, 1));
  const int64_t chunks = n == 0 ? 0 : math::ceil_div<int64_t>(units, units_per_chunk);

  std::vector<double> chunk_sums(kReduce ? chunks : 0);
  parallel_for(chunks, 1, [&](int64_t first, int64_t last) {
    std::vector<T> one_hot(args.labels ? classes : 0, T(0));  // a label row as float targets
    for (int64_t chunk = first; chunk < last; ++chunk) {
      const int64_t begin = chunk * units_per_chunk;
      const int64_t end = std::min(units, begin + units_per_chunk);
      double sum = 0.0;
      if (!args.labels) {
        sum = focal_span<T, G, kGrad, kReduce>(x + begin, args.targets.ptr<const T>() + begin, begin, end - begin,
                                               params, out);
      } else {
        const int64_t* labels = args.targets.ptr<const int64_t>();
        for (int64_t i = begin; i < end; ++i) {
          const int64_t label = labels[i], row = i * classes;
          if (label < 0) {  // ignored: no loss, no gradient
            if (!kReduce) std::fill(out.loss + row, out.loss + row + classes, T(0));
            if (kGrad) std::fill(out.grad + row, out.grad + row + classes, T(0));
            continue;
          }
          if (label < classes) one_hot[label] = T(1);
          sum += focal_span<T, G, kGrad, kReduce>(x + row, one_hot.data(), row, classes, params, out);
          if (label < classes) one_hot[label] = T(0);
        }
      }
      if (kReduce) chunk_sums[chunk] = sum;
    }
  });
  if constexpr (kReduce) {
    double total = 0.0;
    for (double s : chunk_sums) total += s;
    if (args.reduction == Reduction::Mean) {
      total = count > 0 ? total / count : std::numeric_limits<double>::quiet_NaN();
    }
    args.loss.ptr<T>()[0] = static_cast<T>(total);
  }
}

template <typename T, GammaKind G>
void dispatch_modes(const FocalLossArgs& args, const math::FocalParams<T>& params, const Outputs<T>& out,
                    double count) {
  const bool grad = out.grad != nullptr, reduce = args.reduction != Reduction::None;
  if (grad && reduce) focal_loss_kernel<T, G, true, true>(args, params, out, count);
  if (grad && !reduce) focal_loss_kernel<T, G, true, false>(args, params, out, count);
  if (!grad && reduce) focal_loss_kernel<T, G, false, true>(args, params, out, count);
  if (!grad && !reduce) focal_loss_kernel<T, G, false, false>(args, params, out, count);
}

template <typename T>
void focal_loss(const FocalLossArgs& args) {
  double count = static_cast<double>(args.inputs.numel());  // Mean's divisor
  if (args.labels) {
    const int64_t classes = args.inputs.size(1);
    count = static_cast<double>(count_valid_rows(args.targets.ptr<const int64_t>(), args.inputs.size(0), classes) *
                                classes);
  }
  const bool reduce = args.reduction != Reduction::None;
  Outputs<T> out{reduce ? nullptr : args.loss.ptr<T>(), args.grad ? args.grad->ptr<T>() : nullptr, T(1)};
  if (args.reduction == Reduction::Mean && count > 0) out.grad_scale = static_cast<T>(1.0 / count);
  const auto params = math::make_focal_params<T>(args.alpha, args.gamma);
  switch (math::gamma_kind(args.gamma)) {
    case GammaKind::Zero: dispatch_modes<T, GammaKind::Zero>(args, params, out, count); break;
    case GammaKind::One: dispatch_modes<T, GammaKind::One>(args, params, out, count); break;
    case GammaKind::Two: dispatch_modes<T, GammaKind::Two>(args, params, out, count); break;
    case GammaKind::Other: dispatch_modes<T, GammaKind::Other>(args, params, out, count); break;
  }
}

}  // namespace

void sigmoid_focal_loss(const FocalLossArgs& args) {
  DETCORE_DISPATCH_FLOAT32_64(args.inputs.dtype, "sigmoid_focal_loss", [&] { focal_loss<scalar_t>(args); });
}

}  // namespace detcore::cpu
