#include "backend/paste_masks.h"

#include <algorithm>
#include <vector>

#include "cpu/float_staging.h"
#include "detcore/math/paste_masks.h"
#include "detcore/parallel.h"
#include "dispatch.h"

namespace detcore::cpu {
namespace {

// Stores a pasted value as the mask dtype.
template <typename T>
struct StoreValue {
  using out_t = T;
  T outside() const { return T(0); }
  T operator()(T v) const { return v; }
};

// Stores `value > threshold`, compared in the mask dtype.
template <typename T>
struct StoreAboveThreshold {
  using out_t = bool;
  T threshold;
  bool outside() const { return T(0) > threshold; }
  bool operator()(T v) const { return v > threshold; }
};

// The two resampling filters the cursor below pastes with: how a padded mask
// coordinate becomes taps, how a row is resized along the width, how the rows
// of an image row combine, and when the direct (non-separable) form is used.
template <typename T>
struct BilinearFilter {
  using Tap = math::LinearTap<T>;
  static constexpr int kRows = 2;
  static Tap tap(T scale, int64_t dst, int64_t in_size, int64_t out_size) {
    return math::linear_tap(scale, dst, in_size, out_size);
  }
  static void rows(const Tap& t, int64_t* r) { r[0] = t.i0, r[1] = t.i1; }
  static T along_width(const T* mask, int64_t mh, int64_t mw, int64_t r, const Tap& tx) {
    return math::resize_along_width(mask, mh, mw, r, tx);
  }
  static T combine(const T* const* rows, int64_t j, const Tap& ty) {
    return math::resize_along_height(rows[0][j], rows[1][j], ty);
  }
  // Small windows resample each pixel directly (as the GPU does), large ones row by row.
  static bool separable(const math::PasteWindow& win) { return math::separable_resize(win); }
  static T direct(const T* mask, int64_t mh, int64_t mw, const Tap& ty, const Tap& tx) {
    return math::resized_pixel(mask, mh, mw, ty, tx, false);
  }
};

template <typename T>
struct BicubicFilter {
  using Tap = math::CubicTap<T>;
  static constexpr int kRows = 4;
  static Tap tap(T scale, int64_t dst, int64_t in_size, int64_t /*out_size*/) {
    return math::cubic_tap(scale, dst, in_size);
  }
  static void rows(const Tap& t, int64_t* r) { std::copy(t.i, t.i + 4, r); }
  static T along_width(const T* mask, int64_t mh, int64_t mw, int64_t r, const Tap& tx) {
    return math::cubic_along_width(mask, mh, mw, r, tx);
  }
  static T combine(const T* const* rows, int64_t j, const Tap& ty) {
    return math::cubic_sum(rows[0][j], rows[1][j], rows[2][j], rows[3][j], ty);
  }
  static bool separable(const math::PasteWindow&) { return true; }
  static T direct(const T* mask, int64_t mh, int64_t mw, const Tap& ty, const Tap& tx) {
    return math::cubic_resized_pixel(mask, mh, mw, ty, tx);
  }
};

// The mask a range of image rows is pasting: its window, the filter's taps
// of its covered columns and, for the separable resize, its padded rows
// resized along the width (computed on first use; each serves many image rows).
template <typename T, typename Filter>
class PasteCursor {
 public:
  PasteCursor(const T* masks, const T* boxes, int64_t mh, int64_t mw, int64_t image_h, int64_t image_w)
      : masks_(masks), boxes_(boxes), mh_(mh), mw_(mw), image_h_(image_h), image_w_(image_w),
        scale_x_(math::padded_scale<T>(mw)), scale_y_(math::padded_scale<T>(mh)) {}

  void seek(int64_t i) {
    if (i == index_) return;
    index_ = i;
    mask_ = masks_ + i * mh_ * mw_;
    win_ = math::paste_window(math::load_box<T>(boxes_ + 4 * i), scale_x_, scale_y_, image_h_, image_w_);
    separable_ = Filter::separable(win_);
    const int64_t covered = win_.x_end - win_.x_begin;
    const T sx = math::resize_scale<T>(mw_ + 2, win_.width);
    column_taps_.resize(covered);
    for (int64_t j = 0; j < covered; ++j) {
      column_taps_[j] = Filter::tap(sx, win_.x_begin + j - win_.left, mw_ + 2, win_.width);
    }
    if (separable_) {
      width_resized_.resize((mh_ + 2) * covered);
      row_ready_.assign(mh_ + 2, false);
    }
  }

  const math::PasteWindow& window() const { return win_; }

  // Writes the covered columns [x_begin, x_end) of image row y (covered).
  template <typename Store>
  void paste_row(int64_t y, typename Store::out_t* out_row, const Store& store) {
    const auto ty = Filter::tap(math::resize_scale<T>(mh_ + 2, win_.height), y - win_.top, mh_ + 2, win_.height);
    const int64_t covered = win_.x_end - win_.x_begin;
    auto* out = out_row + win_.x_begin;
    if (separable_) {
      int64_t r[Filter::kRows];
      const T* rows[Filter::kRows];
      Filter::rows(ty, r);
      for (int k = 0; k < Filter::kRows; ++k) rows[k] = width_resized_row(r[k]);
      for (int64_t j = 0; j < covered; ++j) out[j] = store(Filter::combine(rows, j, ty));
    } else {
      for (int64_t j = 0; j < covered; ++j) out[j] = store(Filter::direct(mask_, mh_, mw_, ty, column_taps_[j]));
    }
  }

 private:
  const T* width_resized_row(int64_t r) {
    const int64_t covered = win_.x_end - win_.x_begin;
    T* row = width_resized_.data() + r * covered;
    if (!row_ready_[r]) {
      for (int64_t j = 0; j < covered; ++j) row[j] = Filter::along_width(mask_, mh_, mw_, r, column_taps_[j]);
      row_ready_[r] = true;
    }
    return row;
  }

  const T* masks_;
  const T* boxes_;
  int64_t mh_, mw_, image_h_, image_w_;
  T scale_x_, scale_y_;
  int64_t index_ = -1;
  const T* mask_ = nullptr;
  math::PasteWindow win_;
  bool separable_ = false;
  std::vector<typename Filter::Tap> column_taps_;
  std::vector<T> width_resized_;
  std::vector<bool> row_ready_;
};

// Names a cursor type in a generic lambda's argument.
template <typename Cursor>
struct CursorTag {
  using type = Cursor;
};

// One task per image row of one mask: rows and columns outside the mask's
// window get the outside value (unless out holds it already), covered pixels
// the resized mask.
template <typename Cursor, typename T, typename Store>
void paste_kernel(const T* masks, int64_t n, int64_t mh, int64_t mw, const T* boxes, int64_t image_h, int64_t image_w,
                  typename Store::out_t* out, Store store, bool out_holds_zeros) {
  const auto outside = store.outside();
  const bool fill_outside = !(out_holds_zeros && outside == decltype(outside)(0));
  const int64_t grain = std::max<int64_t>(1, 16384 / image_w);
  parallel_for(n * image_h, grain, [&](int64_t begin, int64_t end) {
    Cursor cursor(masks, boxes, mh, mw, image_h, image_w);
    for (int64_t row = begin; row < end; ++row) {
      const int64_t i = row / image_h, y = row - i * image_h;
      cursor.seek(i);
      const auto& win = cursor.window();
      auto* out_row = out + row * image_w;
      if (y < win.y_begin || y >= win.y_end || win.x_begin == win.x_end) {
        if (fill_outside) std::fill(out_row, out_row + image_w, outside);
        continue;
      }
      if (fill_outside) std::fill(out_row, out_row + win.x_begin, outside);
      cursor.paste_row(y, out_row, store);
      if (fill_outside) std::fill(out_row + win.x_end, out_row + image_w, outside);
    }
  });
}

}  // namespace

// float16 / bfloat16 masks: pasted in float into a float plane, then rounded
// to the masks' dtype, or with a threshold compared as the masks' dtype with
// the threshold rounded to it (as `pasted > threshold` would, and as CUDA
// does).
static void paste_half_masks(const PasteMasksParams& params, const TensorRef& masks, const TensorRef& boxes,
                             const TensorRef& out) {
  FloatStaging staging;
  const TensorRef masks_f = staging.input(masks), boxes_f = staging.input(boxes);
  const PasteMasksParams float_params{std::nullopt, true, params.mode};
  if (!params.threshold) {
    cpu::paste_masks(float_params, masks_f, boxes_f, staging.output(out));
    staging.finish();
    return;
  }
  std::vector<float> plane(static_cast<size_t>(out.numel()));  // zeros
  TensorRef pasted = out;
  pasted.dtype = DType::Float32;
  pasted.data = plane.data();
  cpu::paste_masks(float_params, masks_f, boxes_f, pasted);
  const bool bf16 = masks.dtype == DType::BFloat16;
  auto round = [bf16](float v) {
    return bf16 ? bfloat16_to_float(float_to_bfloat16(v)) : half_to_float(float_to_half(v));
  };
  const float threshold = round(static_cast<float>(*params.threshold));
  const float* values = pasted.ptr<const float>();
  bool* above = out.ptr<bool>();
  parallel_for(out.numel(), 1 << 15, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) above[i] = round(values[i]) > threshold;
  });
}

void paste_masks(const PasteMasksParams& params, const TensorRef& masks, const TensorRef& boxes, const TensorRef& out) {
  if (is_half(masks.dtype)) {
    paste_half_masks(params, masks, boxes, out);
    return;
  }
  const std::optional<double>& threshold = params.threshold;
  const bool out_holds_zeros = params.out_holds_zeros;
  const int64_t n = masks.size(0), mh = masks.size(1), mw = masks.size(2);
  const int64_t image_h = out.size(1), image_w = out.size(2);
  DETCORE_DISPATCH_FLOAT32_64(masks.dtype, "paste_masks", [&] {
    const auto* m = masks.ptr<const scalar_t>();
    const auto* b = boxes.ptr<const scalar_t>();
    auto paste = [&](auto cursor_tag) {
      using Cursor = typename decltype(cursor_tag)::type;
      if (threshold) {
        paste_kernel<Cursor>(m, n, mh, mw, b, image_h, image_w, out.ptr<bool>(),
                             StoreAboveThreshold<scalar_t>{static_cast<scalar_t>(*threshold)}, out_holds_zeros);
      } else {
        paste_kernel<Cursor>(m, n, mh, mw, b, image_h, image_w, out.ptr<scalar_t>(), StoreValue<scalar_t>{},
                             out_holds_zeros);
      }
    };
    if (params.mode == PasteMode::Bicubic) {
      paste(CursorTag<PasteCursor<scalar_t, BicubicFilter<scalar_t>>>{});
    } else {
      paste(CursorTag<PasteCursor<scalar_t, BilinearFilter<scalar_t>>>{});
    }
  });
}

}  // namespace detcore::cpu
