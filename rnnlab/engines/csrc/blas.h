// The matrix products of the compiled time loops, on raw pointers: C = beta C + A B.
//
// A step of a time loop makes one or two products of a (B, H) block with a weight; at the sizes
// rnnlab is trained at on a CPU (B = 16, H = 128) and when generating (B = 1) the cost of a
// product called through ATen (a tensor for each operand, the dispatcher, the checks) is a large
// part of the step. These call the BLAS that torch links (MKL's Fortran sgemm_/dgemm_) directly,
// and for one or two rows, where any BLAS call is mostly overhead, a plain loop. A torch built
// without those symbols (they are declared weak) gets the products through ATen instead.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>

extern "C" {
void sgemm_(const char* transa, const char* transb, const int* m, const int* n, const int* k,
            const float* alpha, const float* a, const int* lda, const float* b, const int* ldb,
            const float* beta, float* c, const int* ldc) __attribute__((weak));
void dgemm_(const char* transa, const char* transb, const int* m, const int* n, const int* k,
            const double* alpha, const double* a, const int* lda, const double* b, const int* ldb,
            const double* beta, double* c, const int* ldc) __attribute__((weak));
}

namespace rnnlab_blas {

// The right operand of a product, a (K, N) matrix: row-major with leading dimension ld, or
// (trans) the transpose of a row-major (N, K) matrix, as a weight W (N, K) is read in h W^T.
template <typename T> struct Op {
  const T* p;
  int64_t ld;
  bool trans;
  int64_t K, N;
  // columns [c, c + n) of the operand (a block of a weight's rows when trans)
  Op cols(int64_t c, int64_t n) const { return {trans ? p + c * ld : p + c, ld, trans, K, n}; }
  // rows [r, r + k)
  Op rows(int64_t r, int64_t k) const { return {trans ? p + r : p + r * ld, ld, trans, k, N}; }
};

// the operand a 2-D tensor holds: a row-major matrix or a transposed view of one
template <typename T> Op<T> op(const at::Tensor& w) {
  const int64_t K = w.size(0), N = w.size(1);
  // a single row or column has no meaningful stride along it: give BLAS a valid one
  if (w.stride(1) == 1 || N == 1) return {w.data_ptr<T>(), K == 1 ? N : w.stride(0), false, K, N};
  TORCH_CHECK(w.stride(0) == 1, "rnnlab compiled: a weight neither row- nor column-major");
  return {w.data_ptr<T>(), w.stride(1), true, K, N};
}
// W^T as an operand (h W^T, W (N, K)); a row-major W is read in place, no view of it made
template <typename T> Op<T> op_t(const at::Tensor& w) {
  const int64_t N = w.size(0), K = w.size(1);
  if (w.stride(1) == 1 && N > 1) return {w.data_ptr<T>(), w.stride(0), true, K, N};
  return op<T>(w.t());
}

inline void gemm(const char* ta, const char* tb, const int* m, const int* n, const int* k,
                 const float* alpha, const float* a, const int* lda, const float* b,
                 const int* ldb, const float* beta, float* c, const int* ldc) {
  sgemm_(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
inline void gemm(const char* ta, const char* tb, const int* m, const int* n, const int* k,
                 const double* alpha, const double* a, const int* lda, const double* b,
                 const int* ldb, const double* beta, double* c, const int* ldc) {
  dgemm_(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
inline bool have_blas(float) { return sgemm_ != nullptr; }
inline bool have_blas(double) { return dgemm_ != nullptr; }

// C (M, N), leading dimension ldc, = beta C + A (M, K), leading dimension lda, times B.
// beta is 0 or 1: with 0, C is written without being read.
template <typename T>
void mm(T* C, int64_t ldc, const T* A, int64_t lda, const Op<T>& B, int64_t M, T beta) {
  const int64_t K = B.K, N = B.N;
  if (M == 0 || N == 0) return;
  if (M <= 2 || !have_blas(T())) {
    if (M <= 2) {  // generation's one row: a loop, no call
      for (int64_t m = 0; m < M; ++m) {
        T* __restrict__ c = C + m * ldc;
        const T* __restrict__ a = A + m * lda;
        if (B.trans) {  // c_n = sum_k a_k W_nk: a dot product per output, W's rows contiguous
          for (int64_t n = 0; n < N; ++n) {
            const T* __restrict__ w = B.p + n * B.ld;
            T s = T(0);
#pragma omp simd reduction(+ : s)
            for (int64_t k = 0; k < K; ++k) s += a[k] * w[k];
            c[n] = beta == T(0) ? s : c[n] + s;
          }
        } else {  // c += a_k B_k for every row k of B, each a contiguous axpy
          if (beta == T(0)) for (int64_t n = 0; n < N; ++n) c[n] = T(0);
          for (int64_t k = 0; k < K; ++k) {
            const T ak = a[k];
            const T* __restrict__ b = B.p + k * B.ld;
#pragma omp simd
            for (int64_t n = 0; n < N; ++n) c[n] += ak * b[n];
          }
        }
      }
      return;
    }
    // no BLAS symbols in this torch: the product through ATen, on views of the same memory
    auto opts = at::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value);
    at::Tensor c = at::from_blob(C, {M, N}, {ldc, 1}, opts);
    at::Tensor a = at::from_blob(const_cast<T*>(A), {M, K}, {lda, 1}, opts);
    at::Tensor b = B.trans ? at::from_blob(const_cast<T*>(B.p), {K, N}, {1, B.ld}, opts)
                           : at::from_blob(const_cast<T*>(B.p), {K, N}, {B.ld, 1}, opts);
    if (beta == T(0)) at::mm_out(c, a, b);
    else c.addmm_(a, b);
    return;
  }
  // row-major C = A B is column-major C^T = B^T A^T: B's storage read column-major is B^T
  // (or, for a transposed operand, needs the transpose), A's is A^T
  const int m = static_cast<int>(N), n = static_cast<int>(M), k = static_cast<int>(K);
  const int lb = static_cast<int>(B.ld), la = static_cast<int>(lda), lc = static_cast<int>(ldc);
  const T one = T(1);
  gemm(B.trans ? "T" : "N", "N", &m, &n, &k, &one, B.p, &lb, A, &la, &beta, C, &lc);
}

}  // namespace rnnlab_blas
