// The ``compiled`` engine's time loops: the ``bptt`` engine's forward and backward loops in C++.
//
// The equations are the cells' own (rnnlab/cells/*.py, step and step_backward), term by term:
// per step one product with W_hh (torch's BLAS, into preallocated buffers), then one fused
// element-wise loop over batch and units for the gates, the state and their derivatives.
// tests/test_compiled_engine.py keeps the two in step (float64, relative 1e-7).
//
// Layout, as the Python engine: xw (T, B, G*H) holds the input projection; the forward overwrites
// each step's slice with that step's gate activations (the saved gates), the backward overwrites
// them with dL/dxw_t. states[k] (T+1, B, S) holds state k before the first step (row 0) and after
// every step. mask (T, B) bool marks real steps: at a padded step the state is carried
// (state_t = state_{t-1}), dL/dxw_t is zero and dL/dstate_{t-1} = dL/dstate_t.
//
// Cells (kind, opt): LSTM (0; opt = forget_gate + 2 * peephole, peephole 0 none, 1 diagonal,
// 2 full), GRU (1; opt = reset_after), RNN (2; opt = nonlinearity 0 tanh, 1 relu, 2 sigmoid),
// here; the leaky RNN (3), the residual RNN (4), the deep-transition cell (5), the output-feedback
// (6) and output-recurrent (7) cells in their own files (leaky_rnn.cpp, residual_rnn.cpp,
// deep_transition.cpp, output_feedback.cpp; option codes there). common.h: the shared helpers.
#include <torch/extension.h>

#include "common.h"

namespace {

using namespace rnnlab_compiled;

// ================================================================= LSTM
// forward: z = xw_t + W_hh h_{t-1} (+ peepholes on C_{t-1}); i, f = sigma, g = tanh,
// C_t = f C_{t-1} + i g (no forget gate: C_{t-1} + i g), o = sigma(z_o (+ w_co C_t)),
// h_t = o tanh(C_t)
// one row of the forward's gate loop; each gate block its own __restrict__ pointer (the blocks
// never overlap), so the loop vectorises without alias checks
template <typename T, bool fg, int pk>
inline void lstm_row(T* __restrict__ zi, T* __restrict__ zf, T* __restrict__ zg,
                     T* __restrict__ zo, const T* __restrict__ c, T* __restrict__ cn,
                     T* __restrict__ hn, const T* __restrict__ wci, const T* __restrict__ wcf,
                     const T* __restrict__ wco, int64_t H) {
  for (int64_t j = 0; j < H; ++j) {
    T a = zi[j];
    if (pk == 1) a += wci[j] * c[j];
    const T i = sigm(a);
    const T g = tanh_(zg[j]);
    T cnew;
    if (fg) {
      T af = zf[j];
      if (pk == 1) af += wcf[j] * c[j];
      const T f = sigm(af);
      zf[j] = f;
      cnew = f * c[j] + i * g;
    } else {
      cnew = c[j] + i * g;
    }
    zi[j] = i;
    zg[j] = g;
    cn[j] = cnew;
    if (pk != 2) {  // (full peepholes: the output gate waits for the product w_co C_t)
      T ao = zo[j];
      if (pk == 1) ao += wco[j] * cnew;
      const T o = sigm(ao);
      zo[j] = o;
      hn[j] = o * tanh_(cnew);
    }
  }
}

template <typename T, bool fg, int pk>
void lstm_forward(Tensor& xw, const Tensor& w_hh, const std::vector<Tensor>& peep, Tensor& hs,
                  Tensor& cs, const bool* mask) {
  const int64_t Tn = xw.size(0), B = xw.size(1), GH = xw.size(2), H = hs.size(2);
  const int64_t nf = fg ? 2 * H : H;
  Tensor wT;
  const auto W = transposed<T>(w_hh, Tn, wT);
  const T* wci = pk == 1 ? ptr<T>(peep[0]) : nullptr;
  const T* wcf = pk == 1 && fg ? ptr<T>(peep[1]) : nullptr;
  const T* wco = pk == 1 ? ptr<T>(peep.back()) : nullptr;
  std::vector<Tensor> peepT(peep.size());  // full peepholes: W_c^T for the per-step products
  std::vector<rnnlab_blas::Op<T>> Wc;
  if (pk == 2) for (size_t k = 0; k < peep.size(); ++k) Wc.push_back(transposed<T>(peep[k], Tn, peepT[k]));
  for (int64_t t = 0; t < Tn; ++t) {
    T *zp = at_step<T>(xw, t), *hp0 = at_step<T>(hs, t), *cp0 = at_step<T>(cs, t),
      *hp1 = at_step<T>(hs, t + 1), *cp1 = at_step<T>(cs, t + 1);
    mm<T>(zp, GH, hp0, H, W, B, T(1));
    if (pk == 2) {
      mm<T>(zp, GH, cp0, H, Wc[0], B, T(1));
      if (fg) mm<T>(zp + H, GH, cp0, H, Wc[1], B, T(1));
    }
    Step s{mask ? mask + t * B : nullptr};
    rows(B, H, [&](int64_t b) {
      T* zr = zp + b * GH;
      lstm_row<T, fg, pk>(zr, zr + H, zr + nf, zr + GH - H, cp0 + b * H, cp1 + b * H, hp1 + b * H,
                          wci, wcf, wco, H);
      if (pk != 2 && !s.keep(b)) carry(hp0, cp0, hp1, cp1, b, H);
    });
    if (pk == 2) {
      mm<T>(zp + GH - H, GH, cp1, H, Wc.back(), B, T(1));
      rows(B, H, [&](int64_t b) {
        T* zo = zp + b * GH + GH - H;
        T* cn = cp1 + b * H;
        T* hn = hp1 + b * H;
#pragma omp simd
        for (int64_t j = 0; j < H; ++j) {
          const T o = sigm(zo[j]);
          zo[j] = o;
          hn[j] = o * tanh_(cn[j]);
        }
        if (!s.keep(b)) carry(hp0, cp0, hp1, cp1, b, H);
      });
    }
  }
}

// backward, the cell's step_backward term by term: do = dh tanh(C_t),
// dC_t = dC + dh o (1 - tanh^2 C_t) (+ dz_o w_co), dz_o = do o (1 - o), dz_i = dC_t g i (1 - i),
// dz_f = dC_t C_{t-1} f (1 - f), dz_g = dC_t i (1 - g^2), dC_{t-1} = dC_t f (+ peepholes),
// dh_{t-1} = dz W_hh
// one row of the backward's gate loop (dz over the saved gates, dC_{t-1} into dcq); with full
// peepholes dcq comes in holding dC_t, w_co's part already added
template <typename T, bool fg, int pk>
inline void lstm_back_row(T* __restrict__ zi, T* __restrict__ zf, T* __restrict__ zg,
                          T* __restrict__ zo, const T* __restrict__ c0, const T* __restrict__ c1,
                          const T* __restrict__ dh, const T* __restrict__ dc, T* __restrict__ dcq,
                          const T* __restrict__ wci, const T* __restrict__ wcf,
                          const T* __restrict__ wco, int64_t H) {
  for (int64_t j = 0; j < H; ++j) {
    T dct;
    if (pk == 2) {
      dct = dcq[j];
    } else {
      const T tc = tanh_(c1[j]), o = zo[j], d = dh[j];
      dct = dc[j] + d * o * (T(1) - tc * tc);
      const T dzo = d * tc * (o * (T(1) - o));
      if (pk == 1) dct += dzo * wco[j];
      zo[j] = dzo;
    }
    const T i = zi[j], g = zg[j];
    const T dzi = dct * g * (i * (T(1) - i));
    T dcprev = dct;
    if (fg) {
      const T f = zf[j];
      const T dzf = dct * c0[j] * (f * (T(1) - f));
      zf[j] = dzf;
      dcprev = dct * f;
      if (pk == 1) dcprev += dzf * wcf[j];
    }
    if (pk == 1) dcprev += dzi * wci[j];
    zi[j] = dzi;
    zg[j] = dct * i * (T(1) - g * g);
    dcq[j] = dcprev;
  }
}

template <typename T, bool fg, int pk>
std::vector<Tensor> lstm_backward(Tensor& gx, const Tensor& w_hh, const std::vector<Tensor>& peep,
                                  const Tensor& hs, const Tensor& cs, const Tensor& dhs,
                                  const Tensor& dcs, const bool* mask) {
  const int64_t Tn = gx.size(0), B = gx.size(1), GH = gx.size(2), H = hs.size(2);
  const int64_t nf = fg ? 2 * H : H;
  const T* wci = pk == 1 ? ptr<T>(peep[0]) : nullptr;
  const T* wcf = pk == 1 && fg ? ptr<T>(peep[1]) : nullptr;
  const T* wco = pk == 1 ? ptr<T>(peep.back()) : nullptr;
  Tensor dh = at::zeros({B, H}, hs.options()), dc = at::zeros({B, H}, hs.options());
  Tensor dhp = at::empty({B, H}, hs.options()), dcp = at::empty({B, H}, hs.options());
  const auto Wb = op<T>(w_hh);
  for (int64_t t = Tn - 1; t >= 0; --t) {
    add_seq<T>(ptr<T>(dh), dhs, t);
    add_seq<T>(ptr<T>(dc), dcs, t);
    T *zp = at_step<T>(gx, t), *dhp_ = ptr<T>(dh), *dcp_ = ptr<T>(dc), *dhq = ptr<T>(dhp), *dcq = ptr<T>(dcp);
    const T *c0p = at_step<T>(cs, t), *c1p = at_step<T>(cs, t + 1);
    Step s{mask ? mask + t * B : nullptr};
    if (pk == 2) {  // dz_o first: dC_t needs dz_o W_co (a product) before the rest
      rows(B, H, [&](int64_t b) {
        T* zo = zp + b * GH + GH - H;
#pragma omp simd
        for (int64_t j = 0; j < H; ++j) {
          const int64_t k = b * H + j;
          const T tc = tanh_(c1p[k]), o = zo[j], d = dhp_[k];
          dcq[k] = dcp_[k] + d * o * (T(1) - tc * tc);
          zo[j] = d * tc * (o * (T(1) - o));
        }
        if (!s.keep(b)) std::memset(zo, 0, H * sizeof(T));  // a padded step: no dz_o
      });
      mm<T>(dcq, H, zp + GH - H, GH, op<T>(peep.back()), B, T(1));
    }
    rows(B, H, [&](int64_t b) {
      T* zr = zp + b * GH;
      const bool keep = s.keep(b);
      if (!keep) {
        for (int64_t j = 0; j < GH; ++j) zr[j] = T(0);
        for (int64_t j = 0; j < H; ++j) dcq[b * H + j] = dcp_[b * H + j];
        return;
      }
      lstm_back_row<T, fg, pk>(zr, zr + H, zr + nf, zr + GH - H, c0p + b * H, c1p + b * H,
                               dhp_ + b * H, dcp_ + b * H, dcq + b * H, wci, wcf, wco, H);
    });
    if (pk == 2) {
      mm<T>(dcq, H, zp, GH, op<T>(peep[0]), B, T(1));
      if (fg) mm<T>(dcq, H, zp + H, GH, op<T>(peep[1]), B, T(1));
    }
    mm<T>(dhq, H, zp, GH, Wb, B, T(0));
    if (mask) rows(B, H, [&](int64_t b) {
      if (!s.keep(b)) std::memcpy(dhq + b * H, dhp_ + b * H, H * sizeof(T));
    });
    std::swap(dh, dhp);
    std::swap(dc, dcp);
  }
  return {dh, dc};
}

// ================================================================= GRU
// reset_after: r, z = sigma(xw_{r,z} + W_h{r,z} h), hn = W_hn h + b_hn, n = tanh(xw_n + r hn);
// otherwise m = r h, n = tanh(xw_n + W_hn m). h_t = lerp(n, h_{t-1}, z) = (1 - z) n + z h_{t-1}.
// saved: the gates r, z, n in xw, and m (hn, or r h) per step.
// one row of the reset_after forward: gates over xw's pre-activations, q = W_hh h_{t-1}
template <typename T>
inline void gru_row(T* __restrict__ xr, T* __restrict__ xz, T* __restrict__ xn,
                    const T* __restrict__ qr, const T* __restrict__ qz, const T* __restrict__ qn,
                    const T* __restrict__ bn, const T* __restrict__ h, T* __restrict__ m,
                    T* __restrict__ h1, int64_t H) {
  for (int64_t j = 0; j < H; ++j) {
    const T r = sigm(xr[j] + qr[j]);
    const T z = sigm(xz[j] + qz[j]);
    const T hn = bn[j] + qn[j];
    const T n = tanh_(xn[j] + r * hn);
    xr[j] = r;
    xz[j] = z;
    xn[j] = n;
    m[j] = hn;
    h1[j] = lerp(n, h[j], z);
  }
}

// one row of the reset_after backward: dL/d(r, z, n) over the gates, (da_r, da_z, d(hn)) into q
template <typename T>
inline void gru_back_row(T* __restrict__ xr, T* __restrict__ xz, T* __restrict__ xn,
                         T* __restrict__ qr, T* __restrict__ qz, T* __restrict__ qn,
                         T* __restrict__ dhn, const T* __restrict__ h, const T* __restrict__ m,
                         const T* __restrict__ d, T* __restrict__ dq, int64_t H) {
  for (int64_t j = 0; j < H; ++j) {
    const T r = xr[j], z = xz[j], n = xn[j], g = d[j];
    const T dprev = g * z, dn = g - dprev;
    const T da_n = dn - dn * n * n;
    const T da_z = g * (h[j] - n) * (z - z * z);
    const T da_r = da_n * m[j] * (r - r * r);
    const T d_hn = da_n * r;
    dq[j] = dprev;
    xr[j] = da_r;
    xz[j] = da_z;
    xn[j] = da_n;
    qr[j] = da_r;
    qz[j] = da_z;
    qn[j] = d_hn;
    dhn[j] = d_hn;
  }
}

template <typename T, bool reset_after>
void gru_forward(Tensor& xw, const Tensor& w_hh, const Tensor& b_hn, Tensor& hs, Tensor& ms,
                 const bool* mask) {
  const int64_t Tn = xw.size(0), B = xw.size(1), H = hs.size(2), GH = 3 * H;
  Tensor hh = reset_after ? at::empty({B, GH}, hs.options()) : Tensor();
  Tensor wT;
  const Tensor bias = b_hn.defined() ? b_hn : at::zeros({H}, hs.options());
  const T* bn = ptr<T>(bias);
  const auto W = transposed<T>(w_hh, Tn, wT);
  T* hhp = reset_after ? ptr<T>(hh) : nullptr;
  for (int64_t t = 0; t < Tn; ++t) {
    T *xp = at_step<T>(xw, t), *hp0 = at_step<T>(hs, t), *hp1 = at_step<T>(hs, t + 1), *mp = at_step<T>(ms, t);
    Step s{mask ? mask + t * B : nullptr};
    if (reset_after) {
      mm<T>(hhp, GH, hp0, H, W, B, T(0));
      rows(B, H, [&](int64_t b) {
        T* xr = xp + b * GH;
        const T* q = hhp + b * GH;
        gru_row<T>(xr, xr + H, xr + 2 * H, q, q + H, q + 2 * H, bn, hp0 + b * H, mp + b * H,
                   hp1 + b * H, H);
        if (!s.keep(b)) carry<T>(hp0, nullptr, hp1, nullptr, b, H);
      });
    } else {
      mm<T>(xp, GH, hp0, H, W.cols(0, 2 * H), B, T(1));
      // (omp simd: no overlap between the rows and blocks, so no run-time alias checks, whose
      // scalar fallback, taken in some builds, made this step several times slower)
      rows(B, H, [&](int64_t b) {
        T* xr = xp + b * GH;
#pragma omp simd
        for (int64_t j = 0; j < H; ++j) {
          const T r = sigm(xr[j]);
          xr[j] = r;
          xr[H + j] = sigm(xr[H + j]);
          mp[b * H + j] = r * hp0[b * H + j];
        }
      });
      mm<T>(xp + 2 * H, GH, mp, H, W.cols(2 * H, H), B, T(1));
      rows(B, H, [&](int64_t b) {
        T* xr = xp + b * GH;
        const T* h = hp0 + b * H;
#pragma omp simd
        for (int64_t j = 0; j < H; ++j) {
          const T n = tanh_(xr[2 * H + j]);
          xr[2 * H + j] = n;
          hp1[b * H + j] = lerp(n, h[j], xr[H + j]);
        }
        if (!s.keep(b)) carry<T>(hp0, nullptr, hp1, nullptr, b, H);
      });
    }
  }
}

// backward: dh_{t-1} = dh z, dn = dh (1 - z), da_z = dh (h_{t-1} - n) z (1 - z),
// da_n = dn (1 - n^2); reset_after: d(hn) = da_n r, da_r = da_n hn r (1 - r),
// dh_{t-1} += (da_r, da_z, d(hn)) W_hh; otherwise d(r h) = da_n W_hn, dh_{t-1} += d(r h) r,
// da_r = d(r h) h_{t-1} r (1 - r), dh_{t-1} += da_{r,z} W_h{r,z}.
// Returns dh_0 and, with reset_after, d(hn) of every step (T, B, H).
template <typename T, bool reset_after>
std::vector<Tensor> gru_backward(Tensor& gx, const Tensor& w_hh, const Tensor& hs, const Tensor& ms,
                                 const Tensor& dhs, const bool* mask) {
  const int64_t Tn = gx.size(0), B = gx.size(1), H = hs.size(2), GH = 3 * H;
  Tensor dh = at::zeros({B, H}, hs.options()), dhp = at::empty({B, H}, hs.options());
  const Tensor zeros = at::zeros({B, H}, hs.options());
  Tensor dhn = reset_after ? at::empty({Tn, B, H}, hs.options()) : Tensor();
  Tensor dd = at::empty({B, reset_after ? GH : H}, hs.options());  // (da_r, da_z, d(hn)) or d(r h)
  const auto W = op<T>(w_hh);
  for (int64_t t = Tn - 1; t >= 0; --t) {
    add_seq<T>(ptr<T>(dh), dhs, t);
    T *xp = at_step<T>(gx, t), *dcur = ptr<T>(dh), *dq = ptr<T>(dhp), *ddp = ptr<T>(dd);
    const T* zero = ptr<T>(zeros);
    const T *hp0 = at_step<T>(hs, t), *mp = at_step<T>(ms, t);
    T* dhnp = reset_after ? at_step<T>(dhn, t) : nullptr;
    Step s{mask ? mask + t * B : nullptr};
    rows(B, H, [&](int64_t b) {
      T* xr = xp + b * GH;
      const T* d = s.keep(b) ? dcur : zero;  // a padded step: the cell sees no gradient
      if (reset_after) {
        T* q = ddp + b * GH;
        gru_back_row<T>(xr, xr + H, xr + 2 * H, q, q + H, q + 2 * H, dhnp + b * H, hp0 + b * H,
                        mp + b * H, d + b * H, dq + b * H, H);
        return;
      }
      for (int64_t j = 0; j < H; ++j) {
        const int64_t k = b * H + j;
        const T r = xr[j], zz = xr[H + j], n = xr[2 * H + j], g = d[k];
        const T dprev = g * zz, dn = g - dprev;
        dq[k] = dprev;
        xr[H + j] = g * (hp0[k] - n) * (zz - zz * zz);  // da_z
        xr[2 * H + j] = dn - dn * n * n;                 // da_n
        xr[j] = r;  // kept for the second loop, which writes da_r
      }
    });
    if (reset_after) {
      mm<T>(dq, H, ddp, GH, W, B, T(1));
      if (mask) rows(B, H, [&](int64_t b) {  // the carried state's gradient at padded steps
        if (!s.keep(b)) std::memcpy(dq + b * H, dcur + b * H, H * sizeof(T));
      });
    } else {
      mm<T>(ddp, H, xp + 2 * H, GH, W.rows(2 * H, H), B, T(0));
      rows(B, H, [&](int64_t b) {
        T* xr = xp + b * GH;
#pragma omp simd
        for (int64_t j = 0; j < H; ++j) {
          const int64_t k = b * H + j;
          const T r = xr[j], drh = ddp[k];
          dq[k] += drh * r;
          xr[j] = drh * hp0[k] * (r - r * r);
        }
      });
      mm<T>(dq, H, xp, GH, W.rows(0, 2 * H), B, T(1));
      if (mask) rows(B, H, [&](int64_t b) {
        if (!s.keep(b)) std::memcpy(dq + b * H, dcur + b * H, H * sizeof(T));
      });
    }
    std::swap(dh, dhp);
  }
  return {dh, dhn};
}

// ================================================================= vanilla RNN
// forward: H_t = phi(xw_t + W_hh H_{t-1});  backward: dz = dH_t phi'(z), dH_{t-1} = dz W_hh
template <typename T, int kind>
void rnn_forward(Tensor& xw, const Tensor& w_hh, Tensor& hs, const bool* mask) {
  const int64_t Tn = xw.size(0), B = xw.size(1), H = hs.size(2);
  Tensor wT;
  const auto W = transposed<T>(w_hh, Tn, wT);
  for (int64_t t = 0; t < Tn; ++t) {
    T *zp = at_step<T>(xw, t), *hp0 = at_step<T>(hs, t), *hp1 = at_step<T>(hs, t + 1);
    mm<T>(zp, H, hp0, H, W, B, T(1));
    Step s{mask ? mask + t * B : nullptr};
    rows(B, H, [&](int64_t b) {
#pragma omp simd
      for (int64_t j = 0; j < H; ++j) {
        const int64_t k = b * H + j;
        hp1[k] = act<T, kind>(zp[k]);
      }
      if (!s.keep(b)) carry<T>(hp0, nullptr, hp1, nullptr, b, H);
    });
  }
}

template <typename T, int kind>
std::vector<Tensor> rnn_backward(Tensor& gx, const Tensor& w_hh, const Tensor& hs, const Tensor& dhs,
                                 const bool* mask) {
  const int64_t Tn = gx.size(0), B = gx.size(1), H = hs.size(2);
  Tensor dh = at::zeros({B, H}, hs.options()), dhp = at::empty({B, H}, hs.options());
  const auto W = op<T>(w_hh);
  for (int64_t t = Tn - 1; t >= 0; --t) {
    add_seq<T>(ptr<T>(dh), dhs, t);
    T *zp = at_step<T>(gx, t), *d = ptr<T>(dh), *dq = ptr<T>(dhp);
    const T* hp1 = at_step<T>(hs, t + 1);
    Step s{mask ? mask + t * B : nullptr};
    rows(B, H, [&](int64_t b) {
#pragma omp simd
      for (int64_t j = 0; j < H; ++j) {
        const int64_t k = b * H + j;
        zp[k] = act_grad<T, kind>(hp1[k], d[k]);
      }
      if (!s.keep(b)) std::memset(zp + b * H, 0, H * sizeof(T));  // a padded step: no dz
    });
    mm<T>(dq, H, zp, H, W, B, T(0));
    if (mask) rows(B, H, [&](int64_t b) {
      if (!s.keep(b)) std::memcpy(dq + b * H, d + b * H, H * sizeof(T));
    });
    std::swap(dh, dhp);
  }
  return {dh};
}

// ================================================================= entry points
const bool* mask_ptr(const c10::optional<Tensor>& mask) { return cptr<bool>(mask); }

// Runs the forward loop in place: gates into xw, states into states[k][1:]. Returns the extra
// saved sequences (the GRU's m, (T, B, H); the deep-transition cell's u^(j)); none for the others.
std::vector<Tensor> forward(int64_t kind, int64_t opt, Tensor xw, Tensor w_hh,
                            std::vector<Tensor> extra, std::vector<Tensor> states,
                            c10::optional<Tensor> mask) {
  at::NoGradGuard no_grad;
  const bool* m = mask_ptr(mask);
  for (Tensor& e : extra) e = e.contiguous();  // (the loops read them through raw pointers)
  switch (kind) {
    case 3: return leaky_forward(opt, xw, w_hh, extra, states, m);
    case 4: return residual_forward(opt, xw, w_hh, extra, states, m);
    case 5: return deep_transition_forward(opt, xw, w_hh, extra, states, m);
    case 6: case 7: return output_feedback_forward(opt, xw, w_hh, extra, states, m);
    default: break;
  }
  std::vector<Tensor> saved;
  AT_DISPATCH_FLOATING_TYPES(xw.scalar_type(), "rnnlab_compiled_forward", [&] {
    using T = scalar_t;
    if (kind == 0) {
      auto& h = states[0];
      auto& c = states[1];
      switch (opt) {
        case 1: lstm_forward<T, true, 0>(xw, w_hh, extra, h, c, m); break;
        case 0: lstm_forward<T, false, 0>(xw, w_hh, extra, h, c, m); break;
        case 3: lstm_forward<T, true, 1>(xw, w_hh, extra, h, c, m); break;
        case 2: lstm_forward<T, false, 1>(xw, w_hh, extra, h, c, m); break;
        case 5: lstm_forward<T, true, 2>(xw, w_hh, extra, h, c, m); break;
        default: lstm_forward<T, false, 2>(xw, w_hh, extra, h, c, m); break;
      }
    } else if (kind == 1) {
      Tensor ms = at::empty({xw.size(0), xw.size(1), states[0].size(2)}, xw.options());
      const Tensor b_hn = extra.empty() ? Tensor() : extra[0];
      if (opt) gru_forward<T, true>(xw, w_hh, b_hn, states[0], ms, m);
      else gru_forward<T, false>(xw, w_hh, b_hn, states[0], ms, m);
      saved.push_back(ms);
    } else {
      switch (opt) {
        case 0: rnn_forward<T, 0>(xw, w_hh, states[0], m); break;
        case 1: rnn_forward<T, 1>(xw, w_hh, states[0], m); break;
        default: rnn_forward<T, 2>(xw, w_hh, states[0], m); break;
      }
    }
  });
  return saved;
}

// The whole forward in one call, for short sequences (generation's one step at a time): the
// input projection xw = x W_ih^T + b, the state buffers (row 0 = state0), the loop. ``biases``
// are b's summands (none; bias_ih; or bias_ih and bias_hh, summed here rather than by a tensor
// operation per call). Returns xw (now the gates), the states (T+1, B, S_k), then the extra saved
// sequences.
std::vector<Tensor> run(int64_t kind, int64_t opt, Tensor x, Tensor w_ih, std::vector<Tensor> biases,
                        Tensor w_hh, std::vector<Tensor> extra, std::vector<Tensor> state0,
                        c10::optional<Tensor> mask) {
  at::NoGradGuard no_grad;
  const int64_t Tn = x.size(0), B = x.size(1), I = x.size(2), G = w_ih.size(0);
  const Tensor xc = x.contiguous(), w = w_ih.contiguous();
  for (Tensor& b : biases) b = b.contiguous();
  Tensor xw = at::empty({Tn, B, G}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "rnnlab_compiled_run", [&] {
    using T = scalar_t;
    T* xwp = ptr<T>(xw);
    if (!biases.empty()) {  // each row of xw = b = bias_ih (+ bias_hh)
      T* __restrict__ b = xwp;
      std::memcpy(b, ptr<T>(biases[0]), G * sizeof(T));
      for (size_t k = 1; k < biases.size(); ++k) {
        const T* __restrict__ bk = ptr<T>(biases[k]);
        for (int64_t j = 0; j < G; ++j) b[j] += bk[j];
      }
      for (int64_t r = 1; r < Tn * B; ++r) std::memcpy(xwp + r * G, b, G * sizeof(T));
    }
    mm<T>(xwp, G, ptr<T>(xc), I, rnnlab_blas::op_t<T>(w), Tn * B, T(biases.empty() ? 0 : 1));
  });
  std::vector<Tensor> out{xw};
  for (const Tensor& s0 : state0) {
    Tensor buf = at::empty({Tn + 1, B, s0.size(1)}, x.options());
    const Tensor s0c = s0.contiguous();
    std::memcpy(buf.data_ptr(), s0c.data_ptr(), s0c.numel() * s0c.element_size());
    out.push_back(buf);
  }
  std::vector<Tensor> states(out.begin() + 1, out.end());
  for (Tensor& t : forward(kind, opt, xw, w_hh, extra, states, mask)) out.push_back(t);
  return out;
}

// Runs the backward loop: gates (the forward's xw) are overwritten with dL/dxw. d_seqs[k] is
// dL/d(states[k][1:]) or undefined. Returns dL/dstate_0 per state, then the cell's per-step
// recurrent gradients (the GRU reset_after's d(hn), (T, B, H); see each cell's file for the others).
std::vector<Tensor> backward(int64_t kind, int64_t opt, Tensor gates, Tensor w_hh,
                             std::vector<Tensor> extra, std::vector<Tensor> states,
                             std::vector<Tensor> saved, std::vector<c10::optional<Tensor>> d_seqs,
                             c10::optional<Tensor> mask) {
  at::NoGradGuard no_grad;
  const bool* m = mask_ptr(mask);
  for (Tensor& e : extra) e = e.contiguous();
  auto seq = [&](size_t k) { return d_seqs[k].has_value() ? *d_seqs[k] : Tensor(); };
  if (kind >= 3) {
    std::vector<Tensor> d;
    for (size_t k = 0; k < d_seqs.size(); ++k) d.push_back(seq(k));
    switch (kind) {
      case 3: return leaky_backward(opt, gates, w_hh, extra, states, saved, d, m);
      case 4: return residual_backward(opt, gates, w_hh, extra, states, saved, d, m);
      case 5: return deep_transition_backward(opt, gates, w_hh, extra, states, saved, d, m);
      default: return output_feedback_backward(opt, gates, w_hh, extra, states, saved, d, m);
    }
  }
  std::vector<Tensor> out;
  AT_DISPATCH_FLOATING_TYPES(gates.scalar_type(), "rnnlab_compiled_backward", [&] {
    using T = scalar_t;
    Tensor& g = gates;
    if (kind == 0) {
      const Tensor &h = states[0], &c = states[1], dh = seq(0), dc = seq(1);
      switch (opt) {
        case 1: out = lstm_backward<T, true, 0>(g, w_hh, extra, h, c, dh, dc, m); break;
        case 0: out = lstm_backward<T, false, 0>(g, w_hh, extra, h, c, dh, dc, m); break;
        case 3: out = lstm_backward<T, true, 1>(g, w_hh, extra, h, c, dh, dc, m); break;
        case 2: out = lstm_backward<T, false, 1>(g, w_hh, extra, h, c, dh, dc, m); break;
        case 5: out = lstm_backward<T, true, 2>(g, w_hh, extra, h, c, dh, dc, m); break;
        default: out = lstm_backward<T, false, 2>(g, w_hh, extra, h, c, dh, dc, m); break;
      }
    } else if (kind == 1) {
      if (opt) {
        out = gru_backward<T, true>(g, w_hh, states[0], saved[0], seq(0), m);
      } else {
        out = gru_backward<T, false>(g, w_hh, states[0], saved[0], seq(0), m);
        out.pop_back();
      }
    } else {
      switch (opt) {
        case 0: out = rnn_backward<T, 0>(g, w_hh, states[0], seq(0), m); break;
        case 1: out = rnn_backward<T, 1>(g, w_hh, states[0], seq(0), m); break;
        default: out = rnn_backward<T, 2>(g, w_hh, states[0], seq(0), m); break;
      }
    }
  });
  return out;
}

}  // namespace

// the operators, as a Python module (a direct call: generation makes one per step, and torch's
// operator dispatcher would cost more than the step itself)
PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &forward, "the forward loop in place: gates into xw, states into states[k][1:]");
  m.def("run", &run, "input projection, state buffers and forward loop in one call");
  m.def("backward", &backward, "the backward loop: dL/dxw over the gates, dL/dstate_0, d_rec");
}
