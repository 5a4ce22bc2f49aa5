#include "backend/paste_masks.h"
#include "common.cuh"
#include "detcore/math/paste_masks.h"

namespace detcore::cuda {
namespace {

// Stores a pasted value as the mask dtype.
template <typename T>
struct StoreValue {
  using out_t = T;
  __device__ T outside() const { return static_cast<T>(acc_t<T>(0)); }
  __device__ T operator()(acc_t<T> v) const { return static_cast<T>(v); }
};

// Stores `value > threshold` compared in the mask dtype; `threshold` is
// already rounded to it.
template <typename T>
struct StoreAboveThreshold {
  using out_t = bool;
  acc_t<T> threshold;
  __device__ bool outside() const { return acc_t<T>(0) > threshold; }
  __device__ bool operator()(acc_t<T> v) const { return static_cast<acc_t<T>>(static_cast<T>(v)) > threshold; }
};

// One thread per output pixel of all N planes; consecutive threads write
// consecutive pixels of a row. Each thread recomputes its mask's window,
// a few flops on a box that sits in the cache. Bicubic: each thread resizes
// its four rows along the width itself (the CPU caches them; same bits).
template <typename T, typename Store, PasteMode kMode>
__global__ void paste_masks_kernel(const T* __restrict__ masks, const T* __restrict__ boxes, int64_t n, int64_t mh,
                                   int64_t mw, int64_t image_h, int64_t image_w,
                                   typename Store::out_t* __restrict__ out, Store store) {
  using A = acc_t<T>;
  const A scale_x = math::padded_scale<A>(mw);
  const A scale_y = math::padded_scale<A>(mh);
  const int64_t plane = image_h * image_w;
  const int64_t total = n * plane;
  for (const int64_t k : grid_stride_range(total)) {
    const int64_t i = k / plane;
    const int64_t pixel = k - i * plane;
    const int64_t y = pixel / image_w;
    const int64_t x = pixel - y * image_w;
    const auto win = math::paste_window(math::load_box<A>(boxes + 4 * i), scale_x, scale_y, image_h, image_w);
    if (!win.covers(y, x)) {
      out[k] = store.outside();
      continue;
    }
    const A sy = math::resize_scale<A>(mh + 2, win.height), sx = math::resize_scale<A>(mw + 2, win.width);
    if constexpr (kMode == PasteMode::Bicubic) {
      const auto ty = math::cubic_tap(sy, y - win.top, mh + 2);
      const auto tx = math::cubic_tap(sx, x - win.left, mw + 2);
      out[k] = store(math::cubic_resized_pixel(masks + i * mh * mw, mh, mw, ty, tx));
    } else {
      const auto ty = math::linear_tap(sy, y - win.top, mh + 2, win.height);
      const auto tx = math::linear_tap(sx, x - win.left, mw + 2, win.width);
      out[k] = store(math::resized_pixel(masks + i * mh * mw, mh, mw, ty, tx, math::separable_resize(win)));
    }
  }
}

template <typename T, typename Store>
void launch(PasteMode mode, const TensorRef& masks, const TensorRef& boxes, const TensorRef& out, Store store,
            Stream stream) {
  const int64_t n = masks.size(0), image_h = out.size(1), image_w = out.size(2);
  auto* kernel = mode == PasteMode::Bicubic ? paste_masks_kernel<T, Store, PasteMode::Bicubic>
                                            : paste_masks_kernel<T, Store, PasteMode::Bilinear>;
  kernel<<<blocks_for(out.numel()), kThreadsPerBlock, 0, as_cuda_stream(stream)>>>(
      masks.ptr<const T>(), boxes.ptr<const T>(), n, masks.size(1), masks.size(2), image_h, image_w,
      out.ptr<typename Store::out_t>(), store);
}

}  // namespace

void paste_masks(const PasteMasksParams& params, const TensorRef& masks, const TensorRef& boxes, const TensorRef& out,
                 Stream stream) {
  const std::optional<double>& threshold = params.threshold;
  DeviceGuard guard(masks);
  DETCORE_DISPATCH_CUDA_FLOATING(masks.dtype, "paste_masks", [&] {
    using A = acc_t<scalar_t>;
    if (threshold) {
      // Rounded to the mask dtype first, as `pasted > threshold` would be.
      const A t = static_cast<A>(static_cast<scalar_t>(static_cast<A>(*threshold)));
      launch<scalar_t>(params.mode, masks, boxes, out, StoreAboveThreshold<scalar_t>{t}, stream);
    } else {
      launch<scalar_t>(params.mode, masks, boxes, out, StoreValue<scalar_t>{}, stream);
    }
  });
  check_launch("paste_masks");
}

}  // namespace detcore::cuda
