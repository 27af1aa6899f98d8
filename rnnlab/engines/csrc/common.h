// The compiled engine's element-wise mathematics and small helpers: fast activations, layer
// normalisation of a row, the row loop, raw pointers into (T, B, ...) sequences.
#pragma once

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>

#include "blas.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

namespace rnnlab_compiled {

using at::Tensor;

// ---------------------------------------------------------------- activations
// (always inlined: a call left in a row kernel's loop stops it vectorising)
#define RNNLAB_ACT inline __attribute__((always_inline))
// float: exp by range reduction and a degree-6 polynomial (plain arithmetic, so the loops
// vectorise); double: the C library's, as torch's own double kernels.
RNNLAB_ACT float exp_poly(float r) {  // e^r - 1 - r over r^2, |r| <= ln 2 / 2
  return ((((1.9875691500e-4f * r + 1.3981999507e-3f) * r + 8.3334519073e-3f) * r
           + 4.1665795894e-2f) * r + 1.6666665459e-1f) * r + 5.0000001201e-1f;
}
RNNLAB_ACT float pow2(int32_t n) {  // 2^n
  const int32_t bits = (n + 127) << 23;
  float s;
  std::memcpy(&s, &bits, sizeof(s));
  return s;
}
RNNLAB_ACT float exp_f(float x) {
  x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);  // ternaries, not fmin: they vectorise
  const float t = x * 1.44269504088896341f;
  const int32_t ni = static_cast<int32_t>(t + (t >= 0.0f ? 0.5f : -0.5f));  // round(x / ln 2)
  const float n = static_cast<float>(ni);
  const float r = x - n * 0.693359375f + n * 2.12194440e-4f;  // x - n ln 2 in two parts
  return (exp_poly(r) * r * r + r + 1.0f) * pow2(ni);
}
RNNLAB_ACT float sigm(float x) { return 1.0f / (1.0f + exp_f(-x)); }
RNNLAB_ACT double sigm(double x) { return 1.0 / (1.0 + std::exp(-x)); }
// tanh x = sign(x) (1 - e) / (1 + e), e = e^{-2|x|}; with m = e - 1 = 2^n (e^r - 1) + (2^n - 1),
// y = -2|x| = n ln 2 + r (n = 0 near 0, so nothing cancels there; y clamped at -18, where e is
// below float's 1 - eps): tanh = -m / (2 + m), one division, no branch, within 2e-7 relative
RNNLAB_ACT float tanh_(float x) {
  float y = -2.0f * std::fabs(x);
  y = y < -18.0f ? -18.0f : y;
  const int32_t ni = static_cast<int32_t>(y * 1.44269504088896341f - 0.5f);
  const float n = static_cast<float>(ni);
  const float r = y - n * 0.693359375f + n * 2.12194440e-4f;
  const float s = pow2(ni), m = s * (r + r * r * exp_poly(r)) + (s - 1.0f);
  return std::copysign(-m / (2.0f + m), x);
}
RNNLAB_ACT double tanh_(double x) { return std::tanh(x); }

// the activations by code (rnnlab_compiled::Act: 0 tanh, 1 relu, 2 sigmoid, 3 identity), and
// their derivative from the output a: da/dz times the incoming gradient d
template <typename T, int k> inline T act(T z) {
  return k == 0 ? tanh_(z) : k == 1 ? (z > T(0) ? z : T(0)) : k == 2 ? sigm(z) : z;
}
template <typename T, int k> inline T act_grad(T a, T d) {
  return k == 0 ? d * (T(1) - a * a) : k == 1 ? (a > T(0) ? d : T(0)) : k == 2 ? d * (T(1) - a) * a : d;
}
// torch.lerp(a, b, w) as torch computes it: a + w (b - a) for |w| < 1/2, else b - (b - a) (1 - w)
template <typename T> inline T lerp(T a, T b, T w) {
  return std::fabs(w) < T(0.5) ? a + w * (b - a) : b - (b - a) * (T(1) - w);
}

// ---------------------------------------------------------------- layer normalisation
constexpr double EPS = 1e-5;  // rnnlab.cells.layer_norm.EPS

// the mean mu of h values and 1 / s, s = sqrt(sigma^2 + eps) (mean, then the mean square of
// a - mu, as block_norm)
template <typename T> inline void moments(const T* a, int64_t h, T& mu, T& is) {
  T m = T(0), var = T(0);
#pragma omp simd reduction(+ : m)
  for (int64_t j = 0; j < h; ++j) m += a[j];
  m /= T(h);
#pragma omp simd reduction(+ : var)
  for (int64_t j = 0; j < h; ++j) var += (a[j] - m) * (a[j] - m);
  mu = m;
  is = T(1) / std::sqrt(var / T(h) + T(EPS));
}
// y = (a - mu) / s over each of ``blocks`` blocks of h units of one row, inv[k] = 1 / s_k
template <typename T>
inline void normalize(const T* a, T* y, T* inv, int64_t blocks, int64_t h) {
  for (int64_t k = 0; k < blocks; ++k, a += h, y += h) {
    T mu, is;
    moments(a, h, mu, is);
#pragma omp simd
    for (int64_t j = 0; j < h; ++j) y[j] = (a[j] - mu) * is;
    inv[k] = is;
  }
}
// the derivative of y = LN(a) scaled by the gain g: with e = g * dL/d(g y),
// dL/da = (e - mean(e) - y mean(e y)) / s per block; ``out`` may be ``d`` or ``y`` themselves
template <typename T>
inline void normalize_backward(const T* d, const T* g, const T* y, const T* inv, T* out,
                               int64_t blocks, int64_t h) {
  for (int64_t k = 0; k < blocks; ++k, d += h, g += h, y += h, out += h) {
    T s1 = T(0), s2 = T(0);
#pragma omp simd reduction(+ : s1, s2)
    for (int64_t j = 0; j < h; ++j) {
      const T e = g[j] * d[j];
      s1 += e;
      s2 += e * y[j];
    }
    s1 /= T(h);
    s2 /= T(h);
#pragma omp simd
    for (int64_t j = 0; j < h; ++j) out[j] = (g[j] * d[j] - s1 - y[j] * s2) * inv[k];
  }
}

// ---------------------------------------------------------------- loops and pointers
// run f(b) for every row b of a (B, W) block; several threads where each gets at least 4096 values
template <typename F> inline void rows(int64_t B, int64_t W, const F& f) {
  const int64_t grain = std::max<int64_t>(1, 4096 / std::max<int64_t>(W, 1));
  at::parallel_for(0, B, grain, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) f(b);
  });
}

template <typename T> inline T* ptr(const Tensor& t) { return t.defined() ? t.data_ptr<T>() : nullptr; }
// step t of a contiguous sequence (T, ...)
template <typename T> inline T* at_step(const Tensor& seq, int64_t t) {
  return seq.data_ptr<T>() + t * seq.stride(0);
}

// dst (B, S) += seq_t, the loss's own gradient at a step; seq (T, B, S) is read through its
// strides, so no copy is made of an expanded gradient (a sum's: every stride 0) or of one
// direction's half of a bidirectional layer's gradient (rows 2S apart)
template <typename T> inline void add_seq(T* __restrict__ dst, const Tensor& seq, int64_t t) {
  if (!seq.defined()) return;
  const int64_t B = seq.size(1), S = seq.size(2), s1 = seq.stride(1), s2 = seq.stride(2);
  const T* src = at_step<T>(seq, t);
  for (int64_t b = 0; b < B; ++b) {
    const T* __restrict__ r = src + b * s1;
    T* __restrict__ d = dst + b * S;
    if (s2 == 1) {
      for (int64_t k = 0; k < S; ++k) d[k] += r[k];
    } else {
      for (int64_t k = 0; k < S; ++k) d[k] += r[k * s2];
    }
  }
}

// W^T as the operand of the per-step products x W^T, W (N, K) row-major: a row-major copy of W^T
// (kept in ``copy``) makes each product faster (about a third at the benchmark sizes) but costs
// a pass over W, worth it only over many steps; for a few (generation) W is read in place
template <typename T> inline rnnlab_blas::Op<T> transposed(const Tensor& w, int64_t steps, Tensor& copy) {
  if (steps < 16) return rnnlab_blas::op_t<T>(w);
  copy = w.t().contiguous();
  return rnnlab_blas::op<T>(copy);
}

}  // namespace rnnlab_compiled
