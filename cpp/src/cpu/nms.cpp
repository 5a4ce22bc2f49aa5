// Greedy NMS on the CPU.
//
// 1. One stable radix sort puts the boxes in visiting order (math/nms.h); for
//    batched_nms a second stable sort by class id groups each class into one
//    contiguous run, still in visiting order inside the run.
// 2. The boxes are gathered in that order as structure-of-arrays with their
//    areas, so the suppression test over a range of boxes is a branch-free
//    loop the compiler vectorizes.
// 3. Each run is processed in blocks of kBlock boxes: the block is resolved
//    serially (its kept boxes are final: every earlier kept box has already
//    suppressed what it should), then its kept boxes suppress the rest of the
//    run, split into chunks across threads. Small runs (most classes of a
//    detector) are instead processed in parallel with each other.
// 4. The kept boxes are listed in visiting order.
#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "backend/nms.h"
#include "cpu/float_staging.h"
#include "detcore/math/nms.h"
#include "detcore/parallel.h"
#include "dispatch.h"
#include "radix_sort.h"
#include "simd_clones.h"

namespace detcore::cpu {
namespace {

constexpr int64_t kBlock = 128;      // boxes resolved serially at a time
constexpr int64_t kTile = 1024;      // boxes of the tail kept in L1 while the block's kept boxes scan them
constexpr int64_t kSmallRun = 4096;  // runs up to this long are spread over threads whole
constexpr int64_t kAlign = 64;
constexpr int64_t kWorkspaceArrays = 12;  // see Workspace below

// Carves the caller's workspace into arrays of n elements of up to 8 bytes.
class Carver {
 public:
  Carver(void* base, int64_t n) : next_(static_cast<char*>(base)), n_(n) {}
  template <typename T>
  T* take() {
    static_assert(sizeof(T) <= 8, "workspace slots hold 8-byte elements");
    auto address = reinterpret_cast<std::uintptr_t>(next_);
    char* start = next_ + (kAlign - address % kAlign) % kAlign;
    next_ = start + 8 * n_;
    return reinterpret_cast<T*>(start);
  }

 private:
  char* next_;
  int64_t n_;
};

template <typename T>
struct SortedBoxes {
  T* __restrict__ x1;
  T* __restrict__ y1;
  T* __restrict__ x2;
  T* __restrict__ y2;
  T* __restrict__ area;
};

// suppressed[q] |= (box i suppresses box q) for q in [lo, hi).
template <typename T>
inline void suppress_range(const SortedBoxes<T>& s, int64_t i, int64_t lo, int64_t hi, T threshold,
                           uint8_t* __restrict__ suppressed) {
  const math::Box<T> a{s.x1[i], s.y1[i], s.x2[i], s.y2[i]};
  const T area_a = s.area[i];
  const T* __restrict__ x1 = s.x1;
  const T* __restrict__ y1 = s.y1;
  const T* __restrict__ x2 = s.x2;
  const T* __restrict__ y2 = s.y2;
  const T* __restrict__ area = s.area;
  for (int64_t q = lo; q < hi; ++q) {
    const math::Box<T> b{x1[q], y1[q], x2[q], y2[q]};
    suppressed[q] |= static_cast<uint8_t>(math::suppresses(a, area_a, b, area[q], threshold));
  }
}

// The hot loop: every box kept in a block against one tile of later boxes.
// Compiled for several instruction sets (simd_clones.h): AVX2 does 8 floats
// per instruction where SSE2 does 4, with the same results.
template <typename T>
inline void suppress_tile(const SortedBoxes<T>& s, const int64_t* kept, int64_t num_kept, int64_t lo, int64_t hi,
                          T threshold, uint8_t* suppressed) {
  for (int64_t k = 0; k < num_kept; ++k) suppress_range(s, kept[k], lo, hi, threshold, suppressed);
}

DETCORE_SIMD_CLONES void suppress_tile_simd(const SortedBoxes<float>& s, const int64_t* kept, int64_t num_kept,
                                            int64_t lo, int64_t hi, float threshold, uint8_t* suppressed) {
  suppress_tile(s, kept, num_kept, lo, hi, threshold, suppressed);
}

DETCORE_SIMD_CLONES void suppress_tile_simd(const SortedBoxes<double>& s, const int64_t* kept, int64_t num_kept,
                                            int64_t lo, int64_t hi, double threshold, uint8_t* suppressed) {
  suppress_tile(s, kept, num_kept, lo, hi, threshold, suppressed);
}

// Greedy NMS over the sorted positions [begin, end).
template <typename T>
void nms_run(const SortedBoxes<T>& s, int64_t begin, int64_t end, T threshold, uint8_t* suppressed) {
  int64_t kept[kBlock];
  for (int64_t block = begin; block < end; block += kBlock) {
    const int64_t block_end = std::min(end, block + kBlock);
    int64_t num_kept = 0;
    for (int64_t p = block; p < block_end; ++p) {
      if (suppressed[p]) continue;
      kept[num_kept++] = p;
      suppress_range(s, p, p + 1, block_end, threshold, suppressed);
    }
    const int64_t tail = end - block_end;
    if (tail == 0 || num_kept == 0) continue;
    const int64_t grain = std::max<int64_t>(kTile, (int64_t{1} << 16) / num_kept);
    parallel_for(tail, grain, [&](int64_t lo, int64_t hi) {
      for (int64_t tile = block_end + lo; tile < block_end + hi; tile += kTile) {
        const int64_t tile_end = std::min(block_end + hi, tile + kTile);
        suppress_tile_simd(s, kept, num_kept, tile, tile_end, threshold, suppressed);
      }
    });
  }
}

// Runs [starts[r], starts[r + 1]) are independent: long ones one after the
// other with threads inside each, short ones side by side.
template <typename T>
void nms_runs(const SortedBoxes<T>& s, const std::vector<int64_t>& starts, T threshold, uint8_t* suppressed) {
  const int64_t num_runs = static_cast<int64_t>(starts.size()) - 1;
  std::vector<int64_t> small;
  for (int64_t r = 0; r < num_runs; ++r) {
    if (starts[r + 1] - starts[r] > kSmallRun) {
      nms_run(s, starts[r], starts[r + 1], threshold, suppressed);
    } else {
      small.push_back(r);
    }
  }
  parallel_for(static_cast<int64_t>(small.size()), 1, [&](int64_t lo, int64_t hi) {
    for (int64_t k = lo; k < hi; ++k) nms_run(s, starts[small[k]], starts[small[k] + 1], threshold, suppressed);
  });
}

template <typename T>
int64_t nms_kernel(const T* boxes, const T* scores, const int64_t* idxs, int64_t n, double iou_threshold, int64_t* keep,
                   void* workspace) {
  using Key = std::conditional_t<std::is_same_v<T, float>, uint32_t, uint64_t>;
  Carver carve(workspace, n);
  // The 12 arrays of kWorkspaceArrays; the class-key arrays reuse the score-key ones.
  auto* keys = carve.take<Key>();
  auto* keys_alt = carve.take<Key>();
  auto* order = carve.take<int64_t>();
  auto* order_alt = carve.take<int64_t>();
  auto* grouped_alt = carve.take<int64_t>();
  SortedBoxes<T> sorted{carve.take<T>(), carve.take<T>(), carve.take<T>(), carve.take<T>(), carve.take<T>()};
  auto* suppressed = carve.take<uint8_t>();
  auto* kept_by_index = carve.take<uint8_t>();
  uint64_t* class_keys = reinterpret_cast<uint64_t*>(keys);
  uint64_t* class_keys_alt = reinterpret_cast<uint64_t*>(keys_alt);

  for (int64_t i = 0; i < n; ++i) {
    keys[i] = math::nms_sort_key(scores[i]);
    order[i] = i;
  }
  radix_sort(n, keys, order, keys_alt, order_alt);  // order: visiting order

  // position -> box index; the boxes of one class form one run of positions.
  int64_t* position_to_box = order;
  std::vector<int64_t> run_starts{0};
  if (idxs != nullptr) {
    int64_t* grouped = order_alt;  // free after the sort
    for (int64_t r = 0; r < n; ++r) {
      // Flipping the sign bit orders int64 ids as unsigned keys.
      class_keys[r] = static_cast<uint64_t>(idxs[order[r]]) ^ (uint64_t{1} << 63);
      grouped[r] = order[r];
    }
    radix_sort(n, class_keys, grouped, class_keys_alt, grouped_alt);
    for (int64_t p = 1; p < n; ++p) {
      if (class_keys[p] != class_keys[p - 1]) run_starts.push_back(p);
    }
    position_to_box = grouped;
  }
  run_starts.push_back(n);

  parallel_for(n, 4096, [&](int64_t lo, int64_t hi) {
    for (int64_t p = lo; p < hi; ++p) {
      const auto box = math::load_box<T>(boxes + 4 * position_to_box[p]);
      sorted.x1[p] = box.x1;
      sorted.y1[p] = box.y1;
      sorted.x2[p] = box.x2;
      sorted.y2[p] = box.y2;
      sorted.area[p] = math::area(box);
    }
  });
  std::memset(suppressed, 0, n);
  nms_runs(sorted, run_starts, math::nms_threshold_in<T>(iou_threshold), suppressed);

  int64_t count = 0;
  if (idxs == nullptr) {
    for (int64_t r = 0; r < n; ++r) {
      if (!suppressed[r]) keep[count++] = order[r];
    }
  } else {
    for (int64_t p = 0; p < n; ++p) kept_by_index[position_to_box[p]] = !suppressed[p];
    for (int64_t r = 0; r < n; ++r) {
      if (kept_by_index[order[r]]) keep[count++] = order[r];
    }
  }
  return count;
}

}  // namespace

int64_t nms_workspace_bytes(int64_t num_boxes) { return kWorkspaceArrays * (8 * num_boxes + kAlign); }

int64_t nms(const NmsParams& params, const TensorRef& boxes, const TensorRef& scores, const TensorRef* idxs,
            const TensorRef& keep, const TensorRef& workspace) {
  if (is_half(boxes.dtype)) {
    FloatStaging staging;  // the scores widen exactly: the order is unchanged
    return cpu::nms(params, staging.input(boxes), staging.input(scores), idxs, keep, workspace);
  }
  int64_t count = 0;
  DETCORE_DISPATCH_FLOAT32_64(boxes.dtype, "nms", [&] {
    count = nms_kernel(boxes.ptr<const scalar_t>(), scores.ptr<const scalar_t>(),
                       idxs ? idxs->ptr<const int64_t>() : nullptr, boxes.size(0), params.iou_threshold,
                       keep.ptr<int64_t>(), workspace.data);
  });
  return count;
}

}  // namespace detcore::cpu
