// Soft-NMS on the CPU (rules in detcore/math/soft_nms.h).
//
// The boxes are grouped by class (a stable sort of the indices; one group for
// plain soft-NMS), each group keeping index order. A group's remaining boxes
// live in structure-of-arrays; each step outputs the best remaining box and
// then makes one pass over the others that decays their scores, compacts away
// the discarded ones (keeping index order, so ties still go to the lower
// index) and finds the next best. Groups run in parallel; their outputs are
// merged into one decreasing score order (ties by lower index, NaN last).
#include "backend/soft_nms.h"

#include <algorithm>
#include <cstring>
#include <numeric>

#include "detcore/parallel.h"
#include "dispatch.h"

namespace detcore::cpu {
namespace {

constexpr int64_t kAlign = 64;
constexpr int64_t kArrays = 10;  // see Workspace

// The caller's workspace as arrays of n elements of up to 8 bytes.
struct Workspace {
  int64_t* order;       // indices grouped by class
  int64_t* group_kept;  // at a group's first position: how many it kept
  int64_t* index;       // remaining boxes' indices
  double* x1;           // remaining boxes, as T (<= 8 bytes)
  double* y1;
  double* x2;
  double* y2;
  double* area;
  double* score;
  double* final_score;  // by box index: its score when output
};

Workspace carve(void* base, int64_t n) {
  auto* next = static_cast<char*>(base);
  auto take = [&]() {
    const auto address = reinterpret_cast<std::uintptr_t>(next);
    char* start = next + (kAlign - address % kAlign) % kAlign;
    next = start + 8 * n;
    return start;
  };
  Workspace w;
  w.order = reinterpret_cast<int64_t*>(take());
  w.group_kept = reinterpret_cast<int64_t*>(take());
  w.index = reinterpret_cast<int64_t*>(take());
  w.x1 = reinterpret_cast<double*>(take());
  w.y1 = reinterpret_cast<double*>(take());
  w.x2 = reinterpret_cast<double*>(take());
  w.y2 = reinterpret_cast<double*>(take());
  w.area = reinterpret_cast<double*>(take());
  w.score = reinterpret_cast<double*>(take());
  w.final_score = reinterpret_cast<double*>(take());
  return w;
}

template <typename T>
struct Group {
  int64_t* index;
  T* x1;
  T* y1;
  T* x2;
  T* y2;
  T* area;
  T* score;
};

// Soft-NMS of one group of `size` boxes (indices order[0, size)); writes the
// kept indices, in output order, over order[0, kept) and returns kept.
template <typename T>
int64_t soft_nms_group(const SoftNMSParams& params, const T* boxes, const T* scores, int64_t* order, int64_t size,
                       const Group<T>& g, T* final_score) {
  const double score_threshold = params.score_threshold;
  const T iou_threshold = math::nms_threshold_in<T>(params.iou_threshold);
  const T sigma = static_cast<T>(params.sigma);
  // Load the boxes that start at or above the score threshold.
  int64_t remaining = 0, best = -1;
  for (int64_t k = 0; k < size; ++k) {
    const int64_t i = order[k];
    const T s = scores[i];
    if (static_cast<double>(s) < score_threshold) continue;
    const auto b = math::load_box<T>(boxes + 4 * i);
    g.index[remaining] = i;
    g.x1[remaining] = b.x1, g.y1[remaining] = b.y1, g.x2[remaining] = b.x2, g.y2[remaining] = b.y2;
    g.area[remaining] = math::area(b);
    g.score[remaining] = s;
    if (best < 0 || math::score_above(s, g.score[best])) best = remaining;
    ++remaining;
  }
  int64_t kept = 0;
  while (remaining > 0) {
    const int64_t m = best;
    const math::Box<T> top{g.x1[m], g.y1[m], g.x2[m], g.y2[m]};
    const T top_area = g.area[m];
    order[kept++] = g.index[m];
    final_score[g.index[m]] = g.score[m];
    int64_t w = 0;
    best = -1;
    for (int64_t k = 0; k < remaining; ++k) {
      if (k == m) continue;
      const math::Box<T> b{g.x1[k], g.y1[k], g.x2[k], g.y2[k]};
      const T iou = math::iou(top, top_area, b, g.area[k]);
      const T s = g.score[k] * math::soft_nms_weight(iou, params.method, iou_threshold, sigma);
      if (static_cast<double>(s) < score_threshold) continue;
      g.index[w] = g.index[k];
      g.x1[w] = b.x1, g.y1[w] = b.y1, g.x2[w] = b.x2, g.y2[w] = b.y2;
      g.area[w] = g.area[k];
      g.score[w] = s;
      if (best < 0 || math::score_above(s, g.score[best])) best = w;
      ++w;
    }
    remaining = w;
  }
  return kept;
}

template <typename T>
int64_t soft_nms_impl(const SoftNMSParams& params, const TensorRef& boxes_t, const TensorRef& scores_t,
                      const TensorRef* idxs_t, const TensorRef& keep_t, const TensorRef& out_scores_t,
                      const TensorRef& workspace) {
  const int64_t n = boxes_t.size(0);
  const T* boxes = boxes_t.ptr<const T>();
  const T* scores = scores_t.ptr<const T>();
  int64_t* keep = keep_t.ptr<int64_t>();
  T* out_scores = out_scores_t.ptr<T>();
  Workspace ws = carve(workspace.data, n);
  auto* final_score = reinterpret_cast<T*>(ws.final_score);
  std::iota(ws.order, ws.order + n, int64_t{0});

  // Groups: [starts[g], starts[g + 1]) of order.
  std::vector<int64_t> starts{0};
  if (idxs_t != nullptr) {
    const int64_t* idxs = idxs_t->ptr<const int64_t>();
    std::stable_sort(ws.order, ws.order + n, [&](int64_t a, int64_t b) { return idxs[a] < idxs[b]; });
    for (int64_t k = 1; k < n; ++k) {
      if (idxs[ws.order[k]] != idxs[ws.order[k - 1]]) starts.push_back(k);
    }
  }
  starts.push_back(n);
  const int64_t groups = static_cast<int64_t>(starts.size()) - 1;
  parallel_for(groups, 1, [&](int64_t first, int64_t last) {
    for (int64_t gi = first; gi < last; ++gi) {
      const int64_t s = starts[gi], size = starts[gi + 1] - s;
      const Group<T> g{ws.index + s,
                       reinterpret_cast<T*>(ws.x1) + s,
                       reinterpret_cast<T*>(ws.y1) + s,
                       reinterpret_cast<T*>(ws.x2) + s,
                       reinterpret_cast<T*>(ws.y2) + s,
                       reinterpret_cast<T*>(ws.area) + s,
                       reinterpret_cast<T*>(ws.score) + s};
      ws.group_kept[s] = soft_nms_group<T>(params, boxes, scores, ws.order + s, size, g, final_score);
    }
  });
  // Gather the groups' outputs and merge them into one order.
  int64_t count = 0;
  for (int64_t gi = 0; gi < groups; ++gi) {
    const int64_t s = starts[gi];
    std::memmove(keep + count, ws.order + s, sizeof(int64_t) * ws.group_kept[s]);
    count += ws.group_kept[s];
  }
  if (groups > 1) {
    std::sort(keep, keep + count, [&](int64_t a, int64_t b) {
      const T sa = final_score[a], sb = final_score[b];
      if (math::score_above(sa, sb)) return true;
      if (math::score_above(sb, sa)) return false;
      return a < b;
    });
  }
  for (int64_t k = 0; k < count; ++k) out_scores[k] = final_score[keep[k]];
  return count;
}

}  // namespace

int64_t soft_nms_workspace_bytes(int64_t num_boxes) { return kArrays * (8 * num_boxes + kAlign); }

int64_t soft_nms(const SoftNMSParams& params, const TensorRef& boxes, const TensorRef& scores, const TensorRef* idxs,
                 const TensorRef& keep, const TensorRef& out_scores, const TensorRef& workspace) {
  int64_t count = 0;
  DETCORE_DISPATCH_FLOAT32_64(boxes.dtype, "soft_nms", [&] {
    count = soft_nms_impl<scalar_t>(params, boxes, scores, idxs, keep, out_scores, workspace);
  });
  return count;
}

}  // namespace detcore::cpu
