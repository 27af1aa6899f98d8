// The per-step products C (M, N) (+)= A (M, K) B, B (K, N) a weight, through a kernel of rnnlab's
// own with B packed once per call: float32 on AVX2 or AVX-512.
//
// A time loop multiplies a few rows (the batch) by the same weight at every step. A BLAS packs
// its operand into panels at every call (on some processors a seventh of a small product's
// time) and, on some, runs a generic kernel (MKL on AMD processors). Here B is packed once per
// call into panels of NR columns, each stored k-major (panel p: B[k][p NR + j] at
// p K NR + k NR + j, zero past N), and each step runs a register-blocked kernel: MR rows of C
// times one panel, MR x NR sums in vector registers, one broadcast of A and one fused
// multiply-add per row and vector. Whether it beats the BLAS for a shape (M, N, K) is timed once
// per process (faster()), as onednn.h does for oneDNN.
#pragma once

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <immintrin.h>

#include "blas.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstring>
#include <map>
#include <mutex>
#include <tuple>

namespace rnnlab_panels {

#if defined(__AVX512F__)
constexpr bool AVAILABLE = true;
constexpr int VL = 16, MR = 12;  // 24 sums and 2 panel vectors of 32 registers
using vec = __m512;
inline vec load(const float* p) { return _mm512_loadu_ps(p); }
inline void store(float* p, vec v) { _mm512_storeu_ps(p, v); }
inline vec fma(vec a, vec b, vec c) { return _mm512_fmadd_ps(a, b, c); }
inline vec splat(float a) { return _mm512_set1_ps(a); }
inline vec zero() { return _mm512_setzero_ps(); }
inline vec add(vec a, vec b) { return _mm512_add_ps(a, b); }
#elif defined(__AVX2__) && defined(__FMA__)
constexpr bool AVAILABLE = true;
constexpr int VL = 8, MR = 6;    // 12 sums and 2 panel vectors of 16 registers
using vec = __m256;
inline vec load(const float* p) { return _mm256_loadu_ps(p); }
inline void store(float* p, vec v) { _mm256_storeu_ps(p, v); }
inline vec fma(vec a, vec b, vec c) { return _mm256_fmadd_ps(a, b, c); }
inline vec splat(float a) { return _mm256_set1_ps(a); }
inline vec zero() { return _mm256_setzero_ps(); }
inline vec add(vec a, vec b) { return _mm256_add_ps(a, b); }
#else
constexpr bool AVAILABLE = false;
constexpr int VL = 1, MR = 1;
#endif
constexpr int NR = 2 * VL;     // a panel's columns: two vectors
constexpr double MARGIN = 0.05;

// B (K, N) packed into panels (the header's layout)
struct Packed {
  at::Tensor buf;
  int64_t K = 0, N = 0;
  bool defined() const { return buf.defined(); }
  template <typename T> void pack(const rnnlab_blas::Op<T>& B) {  // (float: the kernel's)
    K = B.K, N = B.N;
    const int64_t panels = (N + NR - 1) / NR;
    buf = at::zeros({panels * K * NR}, at::kFloat);
    float* out = buf.data_ptr<float>();
    for (int64_t p = 0; p < panels; ++p) {  // (the source read along its rows)
      const int64_t w = std::min<int64_t>(NR, N - p * NR);
      float* q = out + p * K * NR;
      if (B.trans) {
        for (int64_t j = 0; j < w; ++j)
          for (int64_t k = 0; k < K; ++k) q[k * NR + j] = static_cast<float>(B.p[(p * NR + j) * B.ld + k]);
      } else {
        for (int64_t k = 0; k < K; ++k)
          for (int64_t j = 0; j < w; ++j) q[k * NR + j] = static_cast<float>(B.p[k * B.ld + p * NR + j]);
      }
    }
  }
};

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
// rows [0, R) of C times panel P (K x NR), columns [0, w) of it written (w < NR: the last panel)
template <int R>
inline void block(float* C, int64_t ldc, const float* A, int64_t lda, const float* P, int64_t K, int64_t w,
                  bool acc) {
  vec c0[R], c1[R];  // (the loops over r unrolled: the sums stay in registers)
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) c0[r] = zero(), c1[r] = zero();
  for (int64_t k = 0; k < K; ++k) {
    const vec b0 = load(P + k * NR), b1 = load(P + k * NR + VL);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const vec a = splat(A[r * lda + k]);
      c0[r] = fma(a, b0, c0[r]);
      c1[r] = fma(a, b1, c1[r]);
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
    float* c = C + r * ldc;
    if (w == NR) {
      if (acc) c0[r] = add(load(c), c0[r]), c1[r] = add(load(c + VL), c1[r]);
      store(c, c0[r]), store(c + VL, c1[r]);
    } else {  // the last panel's valid columns
      alignas(64) float s[NR];
      store(s, c0[r]), store(s + VL, c1[r]);
      for (int64_t j = 0; j < w; ++j) c[j] = acc ? c[j] + s[j] : s[j];
    }
  }
}
// block<r> for a run-time r <= R
template <int R>
inline void with_rows(int64_t r, float* C, int64_t ldc, const float* A, int64_t lda, const float* P, int64_t K,
                      int64_t w, bool acc) {
  if constexpr (R > 1) {
    if (r < R) return with_rows<R - 1>(r, C, ldc, A, lda, P, K, w, acc);
  }
  block<R>(C, ldc, A, lda, P, K, w, acc);
}
#endif

// the products run on this kernel so far in the process (for tests: which kernel ran)
inline std::atomic<int64_t>& calls() {
  static std::atomic<int64_t> n{0};
  return n;
}

// C (M, N), rows ldc apart, (+)= A (M, K), rows lda apart, times the packed B; the panels split
// among torch's threads where each gets at least about 64k multiply-adds
inline void mm(float* C, int64_t ldc, const float* A, int64_t lda, const Packed& B, int64_t M, bool acc) {
#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
  calls().fetch_add(1, std::memory_order_relaxed);
  const int64_t K = B.K, N = B.N, panels = (N + NR - 1) / NR;
  const float* P = B.buf.data_ptr<float>();
  const int64_t grain = std::max<int64_t>(1, (1 << 16) / std::max<int64_t>(M * K * NR, 1));
  at::parallel_for(0, panels, grain, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t w = std::min<int64_t>(NR, N - p * NR);
      const int64_t blocks = (M + MR - 1) / MR;  // of equal rows, give or take one (16 = 8 + 8, not 12 + 4)
      for (int64_t b = 0, m = 0; b < blocks; ++b) {
        const int64_t r = M / blocks + (b < M % blocks);
        with_rows<MR>(r, C + m * ldc + p * NR, ldc, A + m * lda, lda, P + p * K * NR, K, w, acc);
        m += r;
      }
    }
  });
#else
  TORCH_CHECK(false, "rnnlab compiled: the packed kernel needs AVX2 and FMA");
#endif
}

// how the kernel is chosen: 0 by the timings (the default), 1 always, 2 never (set_panels, for tests)
inline std::atomic<int>& policy() {
  static std::atomic<int> p{0};
  return p;
}

// (seconds per product on the BLAS, on this kernel) of M rows by a (K, N) operand, timed once
// per shape and thread count (the least of 5 timings each, after a warm-up)
inline std::array<double, 2> timings(int64_t M, int64_t N, int64_t K) {
  static std::mutex mu;
  static std::map<std::tuple<int64_t, int64_t, int64_t, int>, std::array<double, 2>> known;
  const auto key = std::make_tuple(M, N, K, at::get_num_threads());
  std::lock_guard<std::mutex> lock(mu);
  auto it = known.find(key);
  if (it != known.end()) return it->second;
  const at::Tensor a = at::full({M, K}, 0.5f), w = at::full({K, N}, 0.25f), c = at::empty({M, N});
  const auto op = rnnlab_blas::op<float>(w);
  Packed p;
  p.pack(op);
  auto least = [](const auto& f) {
    double best = 1e30;
    for (int k = 0; k < 6; ++k) {
      const auto t0 = std::chrono::steady_clock::now();
      f();
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (k) best = std::min(best, s);
    }
    return best;
  };
  const double blas = least([&] { rnnlab_blas::mm<float>(c.data_ptr<float>(), N, a.data_ptr<float>(), K, op, M, 0.0f); });
  const double own = least([&] { mm(c.data_ptr<float>(), N, a.data_ptr<float>(), K, p, M, false); });
  return known[key] = {blas, own};
}

// whether the kernel runs products of M rows here (not forced off)
inline bool runs(int64_t M) { return AVAILABLE && M > 2 && policy() != 2; }

// whether products of M rows by a (K, N) operand take this kernel: faster by MARGIN than the
// BLAS and than ``rival`` seconds (oneDNN's, where it may run; else infinite)
inline bool chosen(int64_t M, int64_t N, int64_t K, double rival = 1e30) {
  if (!runs(M)) return false;
  if (policy() == 1 || !rnnlab_blas::have_blas(0.0f)) return true;
  const auto t = timings(M, N, K);
  return std::min(t[0], rival) > (1 + MARGIN) * t[1];
}

}  // namespace rnnlab_panels
