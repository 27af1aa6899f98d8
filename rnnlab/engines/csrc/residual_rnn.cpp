// The compiled engine's loops for the residual RNN (rnnlab/cells/residual_rnn_cell.py):
//
//   plain:  r_t = phi(z_r),                    s_t = s_{t-1} + r_t
//   gated:  i_t = sigma(z_i), r_t = phi(z_r),  s_t = s_{t-1} + i_t r_t
//   z = xw_t + W_hh s_{t-1}   (B, G*H), gate order i, r
//
// opt = phi (0 tanh, 1 relu, 2 sigmoid) + 3 * gated; extra: none, or in the forward b (G*H,) if
// xw is W_ih x_t without it (the forward adds b per step, the gates' block being in cache there:
// no broadcast copy of b over all of xw). The forward keeps r_t (or i_t, r_t) in xw (the saved
// gates); the backward returns ds_0 alone (no d_rec).
#include "common.h"

namespace rnnlab_compiled {
namespace {

template <typename T, int phi, bool gated>
void forward_loop(Tensor& xw, const Tensor& w_hh, const Tensor& hs, const Tensor& bias,
                  const bool* mask) {
  const int64_t Tn = xw.size(0), B = xw.size(1), H = hs.size(2), GH = xw.size(2);
  Tensor wT;
  const auto W = transposed<T>(w_hh, Tn, wT);
  std::vector<T> bv(GH, T(0));  // b (G*H,) when xw leaves it to this loop, else zeros
  if (bias.defined()) std::memcpy(bv.data(), ptr<T>(bias), GH * sizeof(T));
  const T* bi = bv.data();
  const T* br = bi + (gated ? H : 0);
  for (int64_t t = 0; t < Tn; ++t) {
    T *zp = at_step<T>(xw, t), *hp0 = at_step<T>(hs, t), *hp1 = at_step<T>(hs, t + 1);
    mm<T>(zp, GH, hp0, H, W, B, T(1));  // z = xw_t + W_hh s_{t-1}   (B, G*H)
    Step s{mask ? mask + t * B : nullptr};
    rows(B, H, [&](int64_t b) {
      T* __restrict__ zi = zp + b * GH;
      T* __restrict__ zr = zi + (gated ? H : 0);
      const T* __restrict__ s0 = hp0 + b * H;
      T* __restrict__ s1 = hp1 + b * H;
#pragma omp simd
      for (int64_t j = 0; j < H; ++j) {
        const T r = act<T, phi>(zr[j] + br[j]);  // z = W_ih x_t + W_hh s_{t-1} + b
        zr[j] = r;
        if (gated) {
          const T i = sigm(zi[j] + bi[j]);
          zi[j] = i;
          s1[j] = s0[j] + i * r;  // s_t = s_{t-1} + i_t r_t
        } else {
          s1[j] = s0[j] + r;      // s_t = s_{t-1} + r_t
        }
      }
      if (!s.keep(b)) carry<T>(hp0, nullptr, hp1, nullptr, b, H);
    });
  }
}

// With ds = dL/ds_t: plain dz_r = phi'(r) ds; gated dz_i = ds r_t i_t (1 - i_t),
// dz_r = phi'(r) ds i_t; both ds_{t-1} = ds (the identity path) + dz W_hh.
template <typename T, int phi, bool gated>
std::vector<Tensor> backward_loop(Tensor& gx, const Tensor& w_hh, const Tensor& hs,
                                  const Tensor& dhs, const bool* mask) {
  const int64_t Tn = gx.size(0), B = gx.size(1), H = hs.size(2), GH = gx.size(2);
  Tensor dh = at::zeros({B, H}, hs.options()), dhp = at::empty({B, H}, hs.options());
  const auto W = op<T>(w_hh);
  for (int64_t t = Tn - 1; t >= 0; --t) {
    add_seq<T>(ptr<T>(dh), dhs, t);
    T *zp = at_step<T>(gx, t), *d = ptr<T>(dh), *dq = ptr<T>(dhp);
    Step s{mask ? mask + t * B : nullptr};
    rows(B, H, [&](int64_t b) {
      T* __restrict__ zi = zp + b * GH;
      T* __restrict__ zr = zi + (gated ? H : 0);
      if (!s.keep(b)) {  // a padded step: no dz, ds_{t-1} = ds
        std::memset(zi, 0, GH * sizeof(T));
        return;
      }
      const T* __restrict__ g = d + b * H;
#pragma omp simd
      for (int64_t j = 0; j < H; ++j) {
        const T r = zr[j];
        if (gated) {
          const T i = zi[j];
          zr[j] = act_grad<T, phi>(r, g[j] * i);
          zi[j] = (g[j] * r) * (i * (T(1) - i));
        } else {
          zr[j] = act_grad<T, phi>(r, g[j]);
        }
      }
    });
    std::memcpy(dq, d, B * H * sizeof(T));
    mm<T>(dq, H, zp, GH, W, B, T(1));  // ds_{t-1} = ds + dz W_hh (a padded step: dz = 0)
    std::swap(dh, dhp);
  }
  return {dh};
}

}  // namespace

std::vector<Tensor> residual_forward(int64_t opt, Tensor& xw, const Tensor& w_hh,
                                     const std::vector<Tensor>& extra,
                                     const std::vector<Tensor>& states, const bool* mask) {
  AT_DISPATCH_FLOATING_TYPES(xw.scalar_type(), "rnnlab_compiled_residual_forward", [&] {
    using T = scalar_t;
    with_phi(opt % 3, [&](auto phi) {
      constexpr int k = decltype(phi)::value;
      const Tensor b = extra.empty() ? Tensor() : extra[0];
      if (opt >= 3) forward_loop<T, k, true>(xw, w_hh, states[0], b, mask);
      else forward_loop<T, k, false>(xw, w_hh, states[0], b, mask);
    });
  });
  return {};
}

std::vector<Tensor> residual_backward(int64_t opt, Tensor& gates, const Tensor& w_hh,
                                      const std::vector<Tensor>& extra,
                                      const std::vector<Tensor>& states,
                                      const std::vector<Tensor>& saved,
                                      const std::vector<Tensor>& d_seqs, const bool* mask) {
  std::vector<Tensor> out;
  AT_DISPATCH_FLOATING_TYPES(gates.scalar_type(), "rnnlab_compiled_residual_backward", [&] {
    using T = scalar_t;
    with_phi(opt % 3, [&](auto phi) {
      constexpr int k = decltype(phi)::value;
      out = opt >= 3 ? backward_loop<T, k, true>(gates, w_hh, states[0], d_seqs[0], mask)
                     : backward_loop<T, k, false>(gates, w_hh, states[0], d_seqs[0], mask);
    });
  });
  return out;
}

}  // namespace rnnlab_compiled
