// Shared by the compiled engine's C++ files: fast activations, the row loop, masks and the
// small tensor helpers every cell's time loops use (see compiled.cpp for the layout of xw,
// states and masks), and the entry points of the cells outside compiled.cpp.
#pragma once

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "blas.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

namespace rnnlab_compiled {

using at::Tensor;
using rnnlab_blas::mm;
using rnnlab_blas::op;

// ---------------------------------------------------------------- activations
// float: exp by range reduction and a degree-6 polynomial (plain arithmetic, so the loops
// vectorise); double: the C library's, as torch's own double kernels.
inline float exp_f(float x) {
  x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);  // ternaries, not fmin: they vectorise
  const float t = x * 1.44269504088896341f;
  const int32_t ni = static_cast<int32_t>(t + (t >= 0.0f ? 0.5f : -0.5f));  // round(x / ln 2)
  const float n = static_cast<float>(ni);
  const float r = x - n * 0.693359375f + n * 2.12194440e-4f;  // x - n ln 2 in two parts
  const float r2 = r * r;
  float p = ((((1.9875691500e-4f * r + 1.3981999507e-3f) * r + 8.3334519073e-3f) * r
              + 4.1665795894e-2f) * r + 1.6666665459e-1f) * r + 5.0000001201e-1f;
  p = p * r2 + r + 1.0f;
  const int32_t bits = (ni + 127) << 23;  // 2^n
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return p * scale;
}
inline float sigm(float x) { return 1.0f / (1.0f + exp_f(-x)); }
inline double sigm(double x) { return 1.0 / (1.0 + std::exp(-x)); }
inline float tanh_(float x) {
  // 1 - 2 / (1 + e^{2x}), and near 0 its series (the closed form loses the relative accuracy);
  // blended by a 0/1 weight rather than chosen by a branch, so that the loops vectorise
  const float big = 1.0f - 2.0f / (1.0f + exp_f(2.0f * x));
  const float w = static_cast<float>(std::fabs(x) < 0.1f);
  const float xs = x * w, x2 = xs * xs;
  const float small = xs * (1.0f + x2 * (-0.333333333f + x2 * (0.133333333f - x2 * 0.0539682540f)));
  return big + w * (small - big);
}
inline double tanh_(double x) { return std::tanh(x); }

// phi and phi' from phi's output a (0 tanh, 1 relu, 2 sigmoid, 3 identity)
template <typename T, int kind> inline T act(T z) {
  return kind == 0 ? tanh_(z) : kind == 1 ? (z > T(0) ? z : T(0)) : kind == 2 ? sigm(z) : z;
}
template <typename T, int kind> inline T act_grad(T a, T da) {
  return kind == 0 ? da * (T(1) - a * a) : kind == 1 ? (a > T(0) ? da : T(0))
       : kind == 2 ? da * (T(1) - a) * a : da;
}
// a + w (b - a): torch.lerp(a, b, w) up to rounding (lerp_torch below: to the last bit)
template <typename T> inline T lerp(T a, T b, T w) { return a + w * (b - a); }

// run f(b) for every row b of a (B, H) block; several threads only where a row block is big
template <typename F> inline void rows(int64_t B, int64_t H, const F& f) {
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(H, 1));
  at::parallel_for(0, B, grain, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) f(b);
  });
}

struct Step {  // the mask of one step: keep(b) is whether row b is a real step
  const bool* m;
  bool keep(int64_t b) const { return m == nullptr || m[b]; }
};

// a padded step: row b of the state after the step is the state before it
template <typename T>
inline void carry(const T* h0, const T* c0, T* h1, T* c1, int64_t b, int64_t H) {
  std::memcpy(h1 + b * H, h0 + b * H, H * sizeof(T));
  if (c0) std::memcpy(c1 + b * H, c0 + b * H, H * sizeof(T));
}

// row t of a contiguous sequence (T, ...), without making a tensor of it
template <typename T> inline T* at_step(const Tensor& seq, int64_t t) {
  return seq.data_ptr<T>() + t * seq.stride(0);
}
// dst += src over n elements: the loss's own gradient at a step (dL/d(output_t)), if any
template <typename T> inline void add_seq(T* __restrict__ dst, const Tensor& seq, int64_t t, int64_t n) {
  if (!seq.defined()) return;
  const T* __restrict__ src = at_step<T>(seq, t);
  for (int64_t k = 0; k < n; ++k) dst[k] += src[k];
}

// W^T for the per-step products h W^T: a row-major copy makes each product faster (about a
// third at the benchmark sizes) but costs a pass over W, worth it only over many steps
inline Tensor transposed(const Tensor& w, int64_t steps) {
  return steps >= 16 ? w.t().contiguous() : w.t();
}

template <typename T> inline T* ptr(const Tensor& t) { return t.data_ptr<T>(); }
template <typename T> inline const T* cptr(const c10::optional<Tensor>& t) {
  return t.has_value() && t->defined() ? t->data_ptr<T>() : nullptr;
}

// torch.lerp(a, b, w) as torch computes it: a + w (b - a) for |w| < 1/2, else b - (b - a) (1 - w)
template <typename T> inline T lerp_torch(T a, T b, T w) {
  return std::fabs(w) < T(0.5) ? a + w * (b - a) : b - (b - a) * (T(1) - w);
}

// f(std::integral_constant<int, k>) for the nonlinearity code k in 0..2 (tanh, relu, sigmoid;
// see act): a run-time option turned into a template argument
template <typename F> inline void with_phi(int64_t k, const F& f) {
  switch (k) {
    case 0: f(std::integral_constant<int, 0>()); break;
    case 1: f(std::integral_constant<int, 1>()); break;
    default: f(std::integral_constant<int, 2>()); break;
  }
}

// ---------------------------------------------------------------- the other cells' loops
// Each takes the option code of its kind (compiled.py's _spec) and dispatches on the dtype.
// forward: runs the loop in place (xw, states[k][1:]); returns the extra saved sequences.
// backward: overwrites gates with dL/dxw; returns dL/dstate_0 per state, then d_rec.
#define RNNLAB_CELL_LOOPS(name)                                                                   \
  std::vector<Tensor> name##_forward(int64_t opt, Tensor& xw, const Tensor& w_hh,                \
                                     const std::vector<Tensor>& extra,                            \
                                     const std::vector<Tensor>& states, const bool* mask);        \
  std::vector<Tensor> name##_backward(int64_t opt, Tensor& gates, const Tensor& w_hh,            \
                                      const std::vector<Tensor>& extra,                           \
                                      const std::vector<Tensor>& states,                          \
                                      const std::vector<Tensor>& saved,                           \
                                      const std::vector<Tensor>& d_seqs, const bool* mask);
RNNLAB_CELL_LOOPS(leaky)            // kind 3, leaky_rnn.cpp
RNNLAB_CELL_LOOPS(residual)         // kind 4, residual_rnn.cpp
RNNLAB_CELL_LOOPS(deep_transition)  // kind 5, deep_transition.cpp
RNNLAB_CELL_LOOPS(output_feedback)  // kinds 6 and 7, output_feedback.cpp (opt carries which)
#undef RNNLAB_CELL_LOOPS

}  // namespace rnnlab_compiled
