// CUDA sigmoid focal loss: one grid-stride pass reads each logit (and target
// or label) once, writes its loss or adds it to the reduction, and writes the
// gradient when asked. float16 / bfloat16 / float32 compute in float.
//
// Sum / Mean are deterministic, without atomics: pass 1 runs a fixed grid
// (min(blocks for n, kReduceBlocks), a function of n only), each thread sums
// its grid-stride elements in order, each block reduces its threads in a
// fixed tree and writes one partial to the workspace; pass 2, one block, adds
// the partials in a fixed tree and writes the (mean-divided) result. With
// labels and Mean, a first one-block kernel counts the non-ignored rows on the
// device (no host sync) for the divisor of the loss and of the gradient.
//
// Labels are read on the device and never used as an index: label > C (not
// checked, that would need a sync) makes its row's loss and gradient NaN.
#include <math.h>

#include "backend/focal_loss.h"
#include "block_reduce.cuh"
#include "common.cuh"
#include "detcore/math/focal_loss.h"

namespace detcore::cuda {
namespace {

using math::GammaKind;

constexpr int kReduceBlocks = 1024;  // ~ 8 resident blocks x 132 SMs (H100)
constexpr int kFinalThreads = 1024;

// Workspace: the count of non-ignored rows, then one partial sum per block
// (8 bytes each, enough for double).
struct WorkspaceLayout {
  int64_t* valid_rows;
  void* partials;
};

WorkspaceLayout layout(const TensorRef& workspace) {
  auto* base = workspace.ptr<int64_t>();
  return {base, base + 1};
}

__global__ void count_valid_rows_kernel(const int64_t* __restrict__ labels, int64_t rows, int64_t* valid_rows) {
  __shared__ int64_t counts[kFinalThreads];
  int64_t count = 0;
  for (int64_t i = threadIdx.x; i < rows; i += blockDim.x) count += labels[i] >= 0;
  counts[threadIdx.x] = count;
  __syncthreads();
  for (int width = blockDim.x / 2; width > 0; width /= 2) {
    if (threadIdx.x < width) counts[threadIdx.x] += counts[threadIdx.x + width];
    __syncthreads();
  }
  if (threadIdx.x == 0) *valid_rows = counts[0];
}

struct KernelShape {
  int64_t n;        // elements
  int64_t classes;  // row length with labels (> 0), else unused
  bool with_grad;
  bool reduce;
  bool mean;
};

// kLabels: targets are int64 labels of rows of `classes` logits.
template <typename T, GammaKind G, bool kLabels>
__global__ void focal_loss_kernel(const T* __restrict__ x, const T* __restrict__ targets,
                                  const int64_t* __restrict__ labels, KernelShape shape,
                                  math::FocalParams<acc_t<T>> params, T* __restrict__ loss, T* __restrict__ grad,
                                  acc_t<T>* __restrict__ partials, const int64_t* __restrict__ valid_rows) {
  using A = acc_t<T>;
  A grad_scale = A(1);
  if (shape.mean) {
    const double count = kLabels ? double(*valid_rows) * double(shape.classes) : double(shape.n);
    grad_scale = count > 0 ? A(1.0 / count) : A(0);
  }
  const int64_t start = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  const int64_t stride = int64_t{blockDim.x} * gridDim.x;
  // Row and column of element k, advanced without a division per element.
  int64_t row = 0, col = 0, row_step = 0, col_step = 0;
  if (kLabels) {
    row = start / shape.classes;
    col = start - row * shape.classes;
    row_step = stride / shape.classes;
    col_step = stride - row_step * shape.classes;
  }
  A sum = A(0);
  for (int64_t k = start; k < shape.n; k += stride) {
    A t;
    bool ignored = false, bad_label = false;
    if (kLabels) {
      const int64_t label = labels[row];
      ignored = label < 0;
      bad_label = label > shape.classes;
      t = col == label ? A(1) : A(0);
    } else {
      t = static_cast<A>(targets[k]);
    }
    auto term = math::sigmoid_focal_term<G, true>(static_cast<A>(x[k]), t, params);
    if (ignored) term = {A(0), A(0)};
    if (bad_label) term = {A(NAN), A(NAN)};
    if (shape.reduce) {
      sum += term.loss;
    } else {
      loss[k] = static_cast<T>(term.loss);
    }
    if (shape.with_grad) grad[k] = static_cast<T>(ignored ? A(0) : term.dloss_dx * grad_scale);
    if (kLabels) {
      row += row_step;
      col += col_step;
      if (col >= shape.classes) {
        col -= shape.classes;
        ++row;
      }
    }
  }
  if (shape.reduce) {
    sum = block_sum(sum);
    if (threadIdx.x == 0) partials[blockIdx.x] = sum;
  }
}

template <typename T>
__global__ void finish_reduction_kernel(const acc_t<T>* __restrict__ partials, int num_partials, KernelShape shape,
                                        const int64_t* __restrict__ valid_rows, bool labels, T* __restrict__ loss) {
  using A = acc_t<T>;
  A sum = A(0);
  for (int i = threadIdx.x; i < num_partials; i += blockDim.x) sum += partials[i];
  sum = block_sum(sum);
  if (threadIdx.x != 0) return;
  if (shape.mean) {
    const double count = labels ? double(*valid_rows) * double(shape.classes) : double(shape.n);
    sum = count > 0 ? A(double(sum) / count) : A(NAN);
  }
  *loss = static_cast<T>(sum);
}

template <typename T, GammaKind G>
void launch(const FocalLossArgs& args, cudaStream_t stream) {
  using A = acc_t<T>;
  const int64_t n = args.inputs.numel();
  const bool reduce = args.reduction != Reduction::None;
  KernelShape shape{n, args.labels ? args.inputs.size(1) : 1, args.grad != nullptr, reduce,
                    args.reduction == Reduction::Mean};
  const auto params = math::make_focal_params<A>(args.alpha, args.gamma);
  WorkspaceLayout ws{nullptr, nullptr};
  if (reduce) ws = layout(*args.workspace);
  const int64_t* labels = args.labels ? args.targets.ptr<const int64_t>() : nullptr;

  if (args.labels && shape.mean) {
    count_valid_rows_kernel<<<1, kFinalThreads, 0, stream>>>(labels, args.inputs.size(0), ws.valid_rows);
    check_launch("sigmoid_focal_loss");
  }
  const unsigned int blocks = reduce ? std::min<unsigned int>(blocks_for(n), kReduceBlocks) : blocks_for(n);
  auto* partials = static_cast<A*>(ws.partials);
  if (n > 0) {
    T* loss = reduce ? nullptr : args.loss.ptr<T>();
    T* grad = args.grad ? args.grad->ptr<T>() : nullptr;
    const T* x = args.inputs.ptr<const T>();
    if (args.labels) {
      focal_loss_kernel<T, G, true><<<blocks, kThreadsPerBlock, 0, stream>>>(x, nullptr, labels, shape, params, loss,
                                                                             grad, partials, ws.valid_rows);
    } else {
      focal_loss_kernel<T, G, false><<<blocks, kThreadsPerBlock, 0, stream>>>(
          x, args.targets.ptr<const T>(), nullptr, shape, params, loss, grad, partials, ws.valid_rows);
    }
    check_launch("sigmoid_focal_loss");
  }
  if (reduce) {
    finish_reduction_kernel<T><<<1, kFinalThreads, 0, stream>>>(partials, n > 0 ? int(blocks) : 0, shape, ws.valid_rows,
                                                                args.labels, args.loss.ptr<T>());
    check_launch("sigmoid_focal_loss");
  }
}

}  // namespace

int64_t sigmoid_focal_loss_workspace_bytes(int64_t numel) {
  (void)numel;
  return int64_t{sizeof(int64_t)} * (1 + kReduceBlocks);
}

void sigmoid_focal_loss(const FocalLossArgs& args, Stream stream) {
  DeviceGuard guard(args.inputs);
  const cudaStream_t s = as_cuda_stream(stream);
  DETCORE_DISPATCH_CUDA_FLOATING(args.inputs.dtype, "sigmoid_focal_loss", [&] {
    switch (math::gamma_kind(args.gamma)) {
      case GammaKind::Zero: launch<scalar_t, GammaKind::Zero>(args, s); break;
      case GammaKind::One: launch<scalar_t, GammaKind::One>(args, s); break;
      case GammaKind::Two: launch<scalar_t, GammaKind::Two>(args, s); break;
      case GammaKind::Other: launch<scalar_t, GammaKind::Other>(args, s); break;
    }
  });
}

}  // namespace detcore::cuda
