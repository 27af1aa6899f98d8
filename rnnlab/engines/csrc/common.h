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
// e^y - 1 for y <= 0, accurate relative to itself near 0 too: y = n ln 2 + r, |r| <= ln 2 / 2,
// e^y - 1 = 2^n (e^r - 1) + (2^n - 1) with e^r - 1 = r + r^2 p(r) (exp_f's polynomial; n = 0
// near y = 0, so nothing cancels there). y is clamped at -18 (e^-18 is below float's 1 - eps).
inline float expm1_neg(float y) {
  y = y < -18.0f ? -18.0f : y;
  const float t = y * 1.44269504088896341f;
  const int32_t ni = static_cast<int32_t>(t - 0.5f);  // round(y / ln 2), t <= 0
  const float n = static_cast<float>(ni);
  const float r = y - n * 0.693359375f + n * 2.12194440e-4f;  // y - n ln 2 in two parts
  const float p = ((((1.9875691500e-4f * r + 1.3981999507e-3f) * r + 8.3334519073e-3f) * r
                    + 4.1665795894e-2f) * r + 1.6666665459e-1f) * r + 5.0000001201e-1f;
  const int32_t bits = (ni + 127) << 23;  // 2^n
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return scale * (r + r * r * p) + (scale - 1.0f);
}
// tanh x = sign(x) (1 - e) / (1 + e), e = e^{-2|x|}; with m = e - 1 (expm1_neg), -m / (2 + m):
// one division, no branch (the loops vectorise), within 2e-7 relative of tanh everywhere
inline float tanh_(float x) {
  const float m = expm1_neg(-2.0f * std::fabs(x));
  return std::copysign(-m / (2.0f + m), x);
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
// dst (B, S) += seq_t: the loss's own gradient at a step (dL/d(output_t)), if any. seq (T, B, S)
// is read through its strides, so that no copy is made of an expanded gradient (a sum's: every
// stride 0) or of one direction's half of a bidirectional layer's gradient (rows 2S apart).
template <typename T> inline void add_seq(T* __restrict__ dst, const Tensor& seq, int64_t t) {
  if (!seq.defined()) return;
  const int64_t B = seq.size(1), S = seq.size(2), s1 = seq.stride(1), s2 = seq.stride(2);
  const T* src = at_step<T>(seq, t);
  for (int64_t b = 0; b < B; ++b) {
    const T* __restrict__ r = src + b * s1;
    T* __restrict__ d = dst + b * S;
    if (s2 == 1) {
      for (int64_t k = 0; k < S; ++k) d[k] += r[k];
    } else if (s2 == 0) {  // one value for the whole row
      const T v = r[0];
      for (int64_t k = 0; k < S; ++k) d[k] += v;
    } else {
      for (int64_t k = 0; k < S; ++k) d[k] += r[k * s2];
    }
  }
}

// W^T as the operand of the per-step products h W^T, W (N, K): a row-major copy of W^T (kept
// in ``copy``) makes each product faster (about a third at the benchmark sizes) but costs a pass
// over W, worth it only over many steps; for a few (generation) W is read in place
template <typename T> inline rnnlab_blas::Op<T> transposed(const Tensor& w, int64_t steps, Tensor& copy) {
  if (steps < 16) return rnnlab_blas::op_t<T>(w);
  copy = w.t().contiguous();
  return op<T>(copy);
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
