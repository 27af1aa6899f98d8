// The per-step products x W^T through oneDNN, where that is faster on this machine.
//
// torch ships two CPU kernels for a product: its BLAS (blas.h) and oneDNN, the library under
// torch.nn.LSTM. For the per-step products of a time loop (a few rows against a large weight)
// oneDNN with the weight reordered once into its blocked layout is up to 1.7x faster on some
// processors and slower on others, and the reorder costs about as much as a step. So the first
// call of each shape (B, N, K, threads) times the BLAS, oneDNN and the reorder on the weight
// itself, and a call of T steps takes oneDNN only where T steps of it and one reorder beat T
// steps of the BLAS by MARGIN. float32 only (oneDNN's linear has no float64); the caller turns
// the route off (rnnlab.linalg.onednn_allowed: deterministic mode, RNNLAB_ONEDNN=0, no oneDNN).
#pragma once

#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>

#include "blas.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <tuple>

namespace rnnlab_onednn {

using at::Tensor;

constexpr double MARGIN = 0.05;
// how the route is chosen: 0 by the timings (the default), 1 always, 2 never (set_onednn, for tests)
inline std::atomic<int>& policy() {
  static std::atomic<int> p{0};
  return p;
}

// torch's operator ``h`` called boxed: its first output
inline Tensor call(const c10::OperatorHandle& h, torch::jit::Stack s) {
  h.callBoxed(&s);
  return s[0].toTensor();
}
inline c10::OperatorHandle op(const char* name) { return c10::Dispatcher::singleton().findSchemaOrThrow(name, ""); }

// W (N, K) in oneDNN's layout for products of B rows
inline Tensor pack(const Tensor& W, int64_t B) {
  static const c10::OperatorHandle h = op("mkldnn::_reorder_linear_weight");
  return call(h, {W.contiguous(), c10::IValue(B)});
}

// x (B, K), rows ld apart (K: contiguous), times W^T -> a new (B, N), W packed by pack()
inline Tensor linear(const float* x, int64_t B, int64_t K, int64_t ld, const Tensor& packed) {
  static const c10::OperatorHandle h = op("mkldnn::_linear_pointwise");
  const Tensor xt = at::from_blob(const_cast<float*>(x), {B, K}, {ld, 1}, at::TensorOptions().dtype(at::kFloat));
  return call(h, {ld == K ? xt : xt.contiguous(), packed, c10::IValue(), "none",
                  c10::List<c10::optional<at::Scalar>>(), c10::IValue(std::string(""))});
}

// the least of n timings of f, in seconds
template <typename F> double least(int n, const F& f) {
  double best = 1e30;
  for (int k = 0; k < n; ++k) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

// (seconds per product on the BLAS, on oneDNN, seconds per reorder) for x (B, K) W^T, W (N, K)
inline std::array<double, 3> timings(const Tensor& W, int64_t B) {
  static std::mutex m;
  static std::map<std::tuple<int64_t, int64_t, int64_t, int>, std::array<double, 3>> known;
  const int64_t N = W.size(0), K = W.size(1);
  const auto key = std::make_tuple(B, N, K, at::get_num_threads());
  std::lock_guard<std::mutex> lock(m);
  auto it = known.find(key);
  if (it != known.end()) return it->second;
  // (not random: torch's generator, a run's masks, stays untouched; the time does not depend on the values)
  const Tensor x = at::full({B, K}, 0.5f), y = at::empty({B, N}), wT = W.t().contiguous();
  const auto op = rnnlab_blas::op<float>(wT);  // as the time loops read W^T over many steps
  const Tensor packed = pack(W, B);
  auto blas = [&] { rnnlab_blas::mm<float>(y.data_ptr<float>(), N, x.data_ptr<float>(), K, op, B, 0.0f); };
  auto dnnl = [&] { linear(x.data_ptr<float>(), B, K, K, packed); };
  blas(), dnnl();  // warm-up: caches, oneDNN's kernel generation
  const std::array<double, 3> t = {least(5, blas), least(5, dnnl), least(2, [&] { pack(W, B); })};
  return known[key] = t;
}

// whether ``steps`` products x (B, K) W^T run faster on oneDNN, its reorder included
inline bool faster(const Tensor& W, int64_t B, int64_t steps) {
  if (B <= 2 || policy() == 2) return false;  // blas.h's own loop
  if (policy() == 1) return true;
  if (steps < 8) return false;  // a reorder costs about a step or more
  const auto t = timings(W, B);
  return steps * t[0] > (1 + MARGIN) * (t[2] + steps * t[1]);
}

}  // namespace rnnlab_onednn

namespace rnnlab_compiled {

using at::Tensor;

// The route of one weight W (N, K) over a call: the forward's products x W^T and the backward's
// d W on oneDNN each where faster() says so (the backward's decided at its first step, so that
// a call without one reorders nothing), else nullptr from forward() / backward(): the BLAS's.
template <typename T> struct Route {
  Tensor W, fw, bw, y;  // the weight; it in oneDNN's layout for each product; the last product
  int64_t B = 0, Tn = 0;
  bool back_open = false;  // the backward's choice still to make

  void init(const Tensor& W_, int64_t B_, int64_t Tn_, bool on, bool forward) {
    if (!std::is_same<T, float>::value || !on) return;
    W = W_, B = B_, Tn = Tn_, back_open = true;
    if (forward && rnnlab_onednn::faster(W, B, Tn)) fw = rnnlab_onednn::pack(W, B);
  }
  // x (B, K) W^T (B, N), rows of x ld apart
  const T* forward(const T* x, int64_t ld) {
    if (!fw.defined()) return nullptr;
    y = rnnlab_onednn::linear(reinterpret_cast<const float*>(x), B, W.size(1), ld, fw);
    return y.template data_ptr<T>();
  }
  // d (B, N) W (B, K), rows of d ld apart
  const T* backward(const T* d, int64_t ld) {
    if (back_open) {
      back_open = false;
      const Tensor Wt = W.t().contiguous();
      if (rnnlab_onednn::faster(Wt, B, Tn)) bw = rnnlab_onednn::pack(Wt, B);
    }
    if (!bw.defined()) return nullptr;
    y = rnnlab_onednn::linear(reinterpret_cast<const float*>(d), B, W.size(0), ld, bw);
    return y.template data_ptr<T>();
  }
};

}  // namespace rnnlab_compiled
