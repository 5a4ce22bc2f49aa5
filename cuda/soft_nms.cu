// CUDA Soft-NMS (rules in detcore/math/soft_nms.h).
//
// The algorithm is sequential: each output box decays the scores the next
// choice depends on. One block of 1024 threads runs it for all the boxes:
// per step, a block-wide argmin over the remaining boxes of (sort key of the
// score, index) picks the next box in the nms order, then every thread decays
// its share of the remaining boxes (only those of the same class for batched
// soft-NMS, so the classes come out merged in one order, exactly as the CPU
// merges its per-class runs). A step costs O(N / 1024) per thread and two
// block barriers; N steps at most. The count is copied back once at the end.
#include <cstdint>
#include <limits>
#include <type_traits>

#include "backend/soft_nms.h"
#include "common.cuh"

namespace detcore::cuda {
namespace {

constexpr int kThreads = 1024;
constexpr int64_t kAlign = 64;

struct Layout {
  void* scores;    // current scores, acc_t (8-byte slots)
  uint8_t* alive;  // 1 while a box remains
  int64_t* count;  // kept boxes
};

int64_t round_up(int64_t bytes) { return (bytes + kAlign - 1) / kAlign * kAlign; }

Layout layout(void* base, int64_t n) {
  auto* p = static_cast<char*>(base);
  Layout l;
  l.scores = p;
  l.alive = reinterpret_cast<uint8_t*>(p + round_up(8 * n));
  l.count = reinterpret_cast<int64_t*>(p + round_up(8 * n) + round_up(n));
  return l;
}

template <typename K>
struct Candidate {
  K key;          // math::nms_sort_key of the score: smaller goes first
  int64_t index;  // ties: lower index; none: max
};

template <typename K>
__device__ bool before(const Candidate<K>& a, const Candidate<K>& b) {
  return a.key < b.key || (a.key == b.key && a.index < b.index);
}

// The first candidate of the block in the order above; valid in every thread.
template <typename K>
__device__ Candidate<K> block_first(Candidate<K> c) {
  __shared__ K keys[32];
  __shared__ int64_t indices[32];
  __shared__ Candidate<K> result;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  for (int offset = 16; offset > 0; offset /= 2) {
    const Candidate<K> other{__shfl_down_sync(0xffffffffu, c.key, offset),
                             __shfl_down_sync(0xffffffffu, c.index, offset)};
    if (before(other, c)) c = other;
  }
  if (lane == 0) {
    keys[warp] = c.key;
    indices[warp] = c.index;
  }
  __syncthreads();
  if (warp == 0) {
    c = lane < int(blockDim.x / 32) ? Candidate<K>{keys[lane], indices[lane]}
                                    : Candidate<K>{std::numeric_limits<K>::max(), std::numeric_limits<int64_t>::max()};
    for (int offset = 16; offset > 0; offset /= 2) {
      const Candidate<K> other{__shfl_down_sync(0xffffffffu, c.key, offset),
                               __shfl_down_sync(0xffffffffu, c.index, offset)};
      if (before(other, c)) c = other;
    }
    if (lane == 0) result = c;
  }
  __syncthreads();
  return result;
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    soft_nms_kernel(const T* __restrict__ boxes, const T* __restrict__ scores, const int64_t* __restrict__ idxs,
                    int64_t n, SoftNMSMethod method, acc_t<T> iou_threshold, acc_t<T> sigma, double score_threshold,
                    acc_t<T>* __restrict__ current, uint8_t* __restrict__ alive, int64_t* __restrict__ keep,
                    T* __restrict__ out_scores, int64_t* __restrict__ count) {
  using A = acc_t<T>;
  using K = std::conditional_t<std::is_same_v<A, double>, uint64_t, uint32_t>;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    const A s = static_cast<A>(scores[i]);
    current[i] = s;
    alive[i] = !(static_cast<double>(s) < score_threshold);
  }
  __syncthreads();
  int64_t kept = 0;
  while (true) {
    Candidate<K> c{std::numeric_limits<K>::max(), std::numeric_limits<int64_t>::max()};
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
      if (!alive[i]) continue;
      const Candidate<K> mine{math::nms_sort_key(current[i]), i};
      if (before(mine, c)) c = mine;
    }
    const Candidate<K> top = block_first(c);
    if (top.index == std::numeric_limits<int64_t>::max()) break;
    const int64_t m = top.index;
    if (threadIdx.x == 0) {
      keep[kept] = m;
      out_scores[kept] = static_cast<T>(current[m]);
      alive[m] = 0;
    }
    ++kept;
    const auto box_m = math::load_box<A>(boxes + 4 * m);
    const A area_m = math::area(box_m);
    const int64_t class_m = idxs != nullptr ? idxs[m] : 0;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
      if (i == m || !alive[i] || (idxs != nullptr && idxs[i] != class_m)) continue;
      const auto b = math::load_box<A>(boxes + 4 * i);
      const A iou = math::iou(box_m, area_m, b, math::area(b));
      const A s = current[i] * math::soft_nms_weight(iou, method, iou_threshold, sigma);
      current[i] = s;
      if (static_cast<double>(s) < score_threshold) alive[i] = 0;
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) *count = kept;
}

}  // namespace

int64_t soft_nms_workspace_bytes(int64_t num_boxes) {
  return round_up(8 * num_boxes) + round_up(num_boxes) + round_up(8);
}

int64_t soft_nms(const SoftNMSParams& params, const TensorRef& boxes, const TensorRef& scores, const TensorRef* idxs,
                 const TensorRef& keep, const TensorRef& out_scores, const TensorRef& workspace, Stream stream) {
  DeviceGuard guard(boxes);
  const int64_t n = boxes.size(0);
  const cudaStream_t s = as_cuda_stream(stream);
  const Layout l = layout(workspace.data, n);
  DETCORE_DISPATCH_CUDA_FLOATING(boxes.dtype, "soft_nms", [&] {
    using A = acc_t<scalar_t>;
    soft_nms_kernel<scalar_t><<<1, kThreads, 0, s>>>(
        boxes.ptr<const scalar_t>(), scores.ptr<const scalar_t>(), idxs ? idxs->ptr<const int64_t>() : nullptr, n,
        params.method, math::nms_threshold_in<A>(params.iou_threshold), static_cast<A>(params.sigma),
        params.score_threshold, static_cast<A*>(l.scores), l.alive, keep.ptr<int64_t>(), out_scores.ptr<scalar_t>(),
        l.count);
  });
  check_launch("soft_nms");
  int64_t count = 0;
  check_cuda(cudaMemcpyAsync(&count, l.count, sizeof(count), cudaMemcpyDeviceToHost, s), "soft_nms: read the count");
  check_cuda(cudaStreamSynchronize(s), "soft_nms: wait for the count");
  return count;
}

}  // namespace detcore::cuda
