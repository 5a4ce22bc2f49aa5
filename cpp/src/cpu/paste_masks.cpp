#include "backend/paste_masks.h"

#include <algorithm>
#include <vector>

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

// One task per image row of one mask: rows outside the mask's window are
// filled with the outside value; covered rows sample the resized mask. Each
// task range keeps the column taps of its current mask.
template <typename T, typename Store>
void paste_kernel(const T* masks, int64_t n, int64_t mh, int64_t mw, const T* boxes, int64_t image_h,
                  int64_t image_w, typename Store::out_t* out, Store store) {
  const T scale_x = math::padded_scale<T>(mw);
  const T scale_y = math::padded_scale<T>(mh);
  const int64_t padded_h = mh + 2, padded_w = mw + 2;
  const auto outside = store.outside();
  const int64_t grain = std::max<int64_t>(1, 16384 / image_w);
  parallel_for(n * image_h, grain, [&](int64_t begin, int64_t end) {
    std::vector<math::LinearTap<T>> column_taps;
    int64_t current = -1;
    math::PasteWindow win;
    for (int64_t row = begin; row < end; ++row) {
      const int64_t i = row / image_h, y = row - i * image_h;
      if (i != current) {
        current = i;
        win = math::paste_window(math::load_box<T>(boxes + 4 * i), scale_x, scale_y, image_h, image_w);
        const T sx = math::resize_scale<T>(padded_w, win.width);
        column_taps.resize(win.x_end - win.x_begin);
        for (int64_t x = win.x_begin; x < win.x_end; ++x) {
          column_taps[x - win.x_begin] = math::linear_tap(sx, x - win.left, padded_w, win.width);
        }
      }
      auto* out_row = out + row * image_w;
      if (y < win.y_begin || y >= win.y_end || win.x_begin == win.x_end) {
        std::fill(out_row, out_row + image_w, outside);
        continue;
      }
      std::fill(out_row, out_row + win.x_begin, outside);
      std::fill(out_row + win.x_end, out_row + image_w, outside);
      const auto ty = math::linear_tap(math::resize_scale<T>(padded_h, win.height), y - win.top, padded_h,
                                       win.height);
      const T* mask = masks + i * mh * mw;
      const bool separable = math::separable_resize(win);
      for (int64_t x = win.x_begin; x < win.x_end; ++x) {
        out_row[x] = store(math::resized_pixel(mask, mh, mw, ty, column_taps[x - win.x_begin], separable));
      }
    }
  });
}

}  // namespace

void paste_masks(const TensorRef& masks, const TensorRef& boxes, const TensorRef& out,
                 std::optional<double> threshold) {
  const int64_t n = masks.size(0), mh = masks.size(1), mw = masks.size(2);
  const int64_t image_h = out.size(1), image_w = out.size(2);
  DETCORE_DISPATCH_FLOAT32_64(masks.dtype, "paste_masks", [&] {
    const auto* m = masks.ptr<const scalar_t>();
    const auto* b = boxes.ptr<const scalar_t>();
    if (threshold) {
      paste_kernel(m, n, mh, mw, b, image_h, image_w, out.ptr<bool>(),
                   StoreAboveThreshold<scalar_t>{static_cast<scalar_t>(*threshold)});
    } else {
      paste_kernel(m, n, mh, mw, b, image_h, image_w, out.ptr<scalar_t>(), StoreValue<scalar_t>{});
    }
  });
}

}  // namespace detcore::cpu
