// NMS on CUDA: the bitmask method, with the greedy reduction on the device.
//
// 1. Sort keys from the scores (math/nms.h) and one stable cub radix sort put
//    the boxes in visiting order; they are gathered in that order with their
//    areas (and class ids for batched_nms).
// 2. mask_kernel: for every box (row) and every later 64-box column block, a
//    64-bit word of the later boxes it would suppress. Boxes of different
//    classes never set a bit.
// 3. reduce_kernel (one block) walks the rows 64 at a time: one thread
//    resolves the 64 rows of the current block against the `removed` bits and
//    the diagonal words, then all threads OR the kept rows' words into the
//    `removed` bits of the later column blocks. It writes the kept indices and
//    their count; the count is the only device-to-host copy.
#include <cub/device/device_radix_sort.cuh>

#include <type_traits>

#include "backend/nms.h"
#include "common.cuh"
#include "detcore/math/nms.h"

namespace detcore::cuda {
namespace {

constexpr int kMaskBits = 64;
constexpr int kReduceThreads = 512;
constexpr int64_t kMaxRowBlocks = 65535;  // gridDim.y of mask_kernel
constexpr int64_t kBaseAlign = 256;       // cub's and the arrays' alignment

// Byte offsets of the workspace arrays; the same for every dtype (sized for
// 8-byte keys and coordinates).
struct Layout {
  int64_t keys_in, keys_out, order_in, order_out, boxes, areas, classes, mask, removed, count, sort_temp;
  size_t sort_temp_bytes;
  int64_t total;
};

template <typename Key>
size_t sort_temp_bytes(int64_t n) {
  size_t bytes = 0;
  check_cuda(
      cub::DeviceRadixSort::SortPairs(nullptr, bytes, static_cast<const Key*>(nullptr), static_cast<Key*>(nullptr),
                                      static_cast<const int64_t*>(nullptr), static_cast<int64_t*>(nullptr), n),
      "nms: cub::DeviceRadixSort::SortPairs size query");
  return bytes;
}

Layout layout(int64_t n) {
  const int64_t col_blocks = math::ceil_div<int64_t>(n, kMaskBits);
  Layout l{};
  int64_t offset = 0;
  auto take = [&](int64_t bytes) {
    const int64_t at = offset;
    offset += math::ceil_div<int64_t>(bytes, kBaseAlign) * kBaseAlign;
    return at;
  };
  l.keys_in = take(8 * n);
  l.keys_out = take(8 * n);
  l.order_in = take(8 * n);
  l.order_out = take(8 * n);
  l.boxes = take(4 * 8 * n);
  l.areas = take(8 * n);
  l.classes = take(8 * n);
  l.mask = take(8 * n * col_blocks);
  l.removed = take(8 * col_blocks);
  l.count = take(8);
  l.sort_temp_bytes = std::max(sort_temp_bytes<uint32_t>(n), sort_temp_bytes<uint64_t>(n));
  l.sort_temp = take(static_cast<int64_t>(l.sort_temp_bytes));
  l.total = offset + kBaseAlign;  // room to align the caller's base pointer
  return l;
}

template <typename T, typename Key>
__global__ void sort_keys_kernel(const T* __restrict__ scores, int64_t n, Key* __restrict__ keys,
                                 int64_t* __restrict__ order) {
  for (const int64_t i : grid_stride_range(n)) {
    keys[i] = math::nms_sort_key(static_cast<acc_t<T>>(scores[i]));
    order[i] = i;
  }
}

template <typename T, typename A>
__global__ void gather_kernel(const T* __restrict__ boxes, const int64_t* __restrict__ idxs,
                              const int64_t* __restrict__ order, int64_t n, math::Box<A>* __restrict__ sorted,
                              A* __restrict__ areas, int64_t* __restrict__ classes) {
  for (const int64_t r : grid_stride_range(n)) {
    const int64_t i = order[r];
    const auto box = math::load_box<A>(boxes + 4 * i);
    sorted[r] = box;
    areas[r] = math::area(box);
    if (idxs != nullptr) classes[r] = idxs[i];
  }
}

// Block (column block x, row block y), 64 threads: thread t writes the word of
// row 64 y + t for column block x. Blocks below the diagonal have no work.
template <typename A>
__global__ void mask_kernel(const math::Box<A>* __restrict__ sorted, const A* __restrict__ areas,
                            const int64_t* __restrict__ classes, int64_t n, int64_t col_blocks, A threshold,
                            uint64_t* __restrict__ mask) {
  const int64_t row_block = blockIdx.y, col_block = blockIdx.x;
  if (col_block < row_block) return;
  __shared__ math::Box<A> col_boxes[kMaskBits];
  __shared__ A col_areas[kMaskBits];
  __shared__ int64_t col_classes[kMaskBits];
  const int64_t col_start = col_block * kMaskBits;
  const int cols = static_cast<int>(min(int64_t{kMaskBits}, n - col_start));
  if (threadIdx.x < cols) {
    col_boxes[threadIdx.x] = sorted[col_start + threadIdx.x];
    col_areas[threadIdx.x] = areas[col_start + threadIdx.x];
    if (classes != nullptr) col_classes[threadIdx.x] = classes[col_start + threadIdx.x];
  }
  __syncthreads();
  const int64_t row = row_block * kMaskBits + threadIdx.x;
  if (row >= n) return;
  const math::Box<A> box = sorted[row];
  const A area = areas[row];
  const int64_t row_class = classes != nullptr ? classes[row] : 0;
  uint64_t bits = 0;
  for (int c = row_block == col_block ? threadIdx.x + 1 : 0; c < cols; ++c) {
    const bool same_class = classes == nullptr || col_classes[c] == row_class;
    if (same_class && math::suppresses(box, area, col_boxes[c], col_areas[c], threshold)) bits |= uint64_t{1} << c;
  }
  mask[row * col_blocks + col_block] = bits;
}

__global__ void __launch_bounds__(kReduceThreads)
    reduce_kernel(const uint64_t* __restrict__ mask, const int64_t* __restrict__ order, int64_t n, int64_t col_blocks,
                  uint64_t* __restrict__ removed, int64_t* __restrict__ keep, int64_t* __restrict__ count) {
  __shared__ uint64_t diagonal[kMaskBits];
  __shared__ uint64_t kept_rows;
  __shared__ int64_t num_kept;
  for (int64_t k = threadIdx.x; k < col_blocks; k += blockDim.x) removed[k] = 0;
  if (threadIdx.x == 0) num_kept = 0;
  __syncthreads();
  for (int64_t block = 0; block < col_blocks; ++block) {
    const int64_t first_row = block * kMaskBits;
    const int rows = static_cast<int>(min(int64_t{kMaskBits}, n - first_row));
    if (threadIdx.x < rows) diagonal[threadIdx.x] = mask[(first_row + threadIdx.x) * col_blocks + block];
    __syncthreads();
    if (threadIdx.x == 0) {
      uint64_t gone = removed[block];
      uint64_t kept = 0;
      int64_t next = num_kept;
      for (int r = 0; r < rows; ++r) {
        if ((gone >> r) & 1) continue;
        kept |= uint64_t{1} << r;
        gone |= diagonal[r];
        keep[next++] = order[first_row + r];
      }
      kept_rows = kept;
      num_kept = next;
    }
    __syncthreads();
    const uint64_t kept = kept_rows;
    if (kept != 0) {
      for (int64_t k = block + 1 + threadIdx.x; k < col_blocks; k += blockDim.x) {
        uint64_t gone = removed[k];
        for (uint64_t rest = kept; rest != 0; rest &= rest - 1) {
          const int r = __ffsll(static_cast<long long>(rest)) - 1;
          gone |= mask[(first_row + r) * col_blocks + k];
        }
        removed[k] = gone;
      }
    }
    __syncthreads();  // removed[block + 1] is read next
  }
  if (threadIdx.x == 0) *count = num_kept;
}

template <typename T>
int64_t run_nms(const TensorRef& boxes, const TensorRef& scores, const TensorRef* idxs, double iou_threshold,
                const TensorRef& keep, const TensorRef& workspace, cudaStream_t stream) {
  using A = acc_t<T>;
  using Key = std::conditional_t<std::is_same_v<A, double>, uint64_t, uint32_t>;
  const int64_t n = boxes.size(0);
  const int64_t col_blocks = math::ceil_div<int64_t>(n, kMaskBits);
  const Layout l = layout(n);
  const auto address = reinterpret_cast<std::uintptr_t>(workspace.data);
  char* base = static_cast<char*>(workspace.data) + (kBaseAlign - address % kBaseAlign) % kBaseAlign;
  auto* keys_in = reinterpret_cast<Key*>(base + l.keys_in);
  auto* keys_out = reinterpret_cast<Key*>(base + l.keys_out);
  auto* order_in = reinterpret_cast<int64_t*>(base + l.order_in);
  auto* order = reinterpret_cast<int64_t*>(base + l.order_out);
  auto* sorted = reinterpret_cast<math::Box<A>*>(base + l.boxes);
  auto* areas = reinterpret_cast<A*>(base + l.areas);
  auto* classes = idxs != nullptr ? reinterpret_cast<int64_t*>(base + l.classes) : nullptr;
  auto* mask = reinterpret_cast<uint64_t*>(base + l.mask);
  auto* removed = reinterpret_cast<uint64_t*>(base + l.removed);
  auto* device_count = reinterpret_cast<int64_t*>(base + l.count);

  sort_keys_kernel<<<blocks_for(n), kThreadsPerBlock, 0, stream>>>(scores.ptr<const T>(), n, keys_in, order_in);
  check_launch("nms: sort keys");
  size_t temp_bytes = l.sort_temp_bytes;
  check_cuda(cub::DeviceRadixSort::SortPairs(base + l.sort_temp, temp_bytes, keys_in, keys_out, order_in, order, n, 0,
                                             static_cast<int>(8 * sizeof(Key)), stream),
             "nms: cub::DeviceRadixSort::SortPairs");
  gather_kernel<<<blocks_for(n), kThreadsPerBlock, 0, stream>>>(
      boxes.ptr<const T>(), idxs != nullptr ? idxs->ptr<const int64_t>() : nullptr, order, n, sorted, areas, classes);
  check_launch("nms: gather");
  const dim3 grid(static_cast<unsigned int>(col_blocks), static_cast<unsigned int>(col_blocks));
  mask_kernel<A><<<grid, kMaskBits, 0, stream>>>(sorted, areas, classes, n, col_blocks,
                                                 math::nms_threshold_in<A>(iou_threshold), mask);
  check_launch("nms: mask");
  reduce_kernel<<<1, kReduceThreads, 0, stream>>>(mask, order, n, col_blocks, removed, keep.ptr<int64_t>(),
                                                  device_count);
  check_launch("nms: reduce");
  int64_t count = 0;
  check_cuda(cudaMemcpyAsync(&count, device_count, sizeof(count), cudaMemcpyDeviceToHost, stream),
             "nms: copy the count");
  check_cuda(cudaStreamSynchronize(stream), "nms: wait for the count");
  return count;
}

}  // namespace

int64_t nms_workspace_bytes(int64_t num_boxes, Device device) {
  if (math::ceil_div<int64_t>(num_boxes, kMaskBits) > kMaxRowBlocks) {
    throw_value_error("boxes: at most ", kMaxRowBlocks * kMaskBits, " boxes are supported on CUDA, got ", num_boxes);
  }
  TensorRef on_device;
  on_device.device = device;
  DeviceGuard guard(on_device);
  return layout(num_boxes).total;
}

int64_t nms(const NmsParams& params, const TensorRef& boxes, const TensorRef& scores, const TensorRef* idxs,
            const TensorRef& keep, const TensorRef& workspace, Stream stream) {
  DeviceGuard guard(boxes);
  int64_t count = 0;
  DETCORE_DISPATCH_CUDA_FLOATING(boxes.dtype, "nms", [&] {
    count = run_nms<scalar_t>(boxes, scores, idxs, params.iou_threshold, keep, workspace, as_cuda_stream(stream));
  });
  return count;
}

}  // namespace detcore::cuda
