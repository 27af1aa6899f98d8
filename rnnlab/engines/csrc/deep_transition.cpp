// The compiled engine's loops for the deep-transition cell (rnnlab/cells/deep_transition_cell.py):
//
//   u^(1)_t = phi(xw_t + W_hh h_{t-1})
//   u^(j)_t = phi(W_j u^(j-1)_t + b_j),   j = 2..L    (one BLAS product per layer and step)
//   h_t = u^(L)_t + h_{t-1}   (skip),   h_t = u^(L)_t   (no skip)
//
// opt = phi (0 tanh, 1 relu, 2 sigmoid) + 3 * skip + 6 * bias; extra = {W_2 .. W_L, b_2 .. b_L}
// (biases with ``bias`` only), so L = 1 + the number of weights. The forward saves u^(1) ..
// u^(L) (skip) or u^(1) .. u^(L-1) (no skip: u^(L) is h_t), each (T, B, H), as the cell's
// ``saved``; xw holds z^(1) afterwards and is the backward's scratch for dz^(1). The backward
// returns dh_0, then dz^(2) .. dz^(L) (T, B, H) each, the cell's d_rec.
#include "common.h"

namespace rnnlab_compiled {
namespace {

struct Layers {  // the transition MLP's layers 2..L
  int64_t L;
  std::vector<Tensor> w, b;  // W_j (H, H), b_j (H,) for j = 2..L (index j - 2)
  Layers(const std::vector<Tensor>& extra, bool bias) {
    const int64_t n = bias ? extra.size() / 2 : extra.size();
    L = 1 + n;
    for (int64_t k = 0; k < n; ++k) {
      w.push_back(extra[k]);
      if (bias) b.push_back(extra[n + k]);
    }
  }
};

// u = phi(u + b) in place over the rows of u (B, H), the bias b (H,) added here rather than by
// the product (one pass, no copy of b into u before it)
template <typename T, int phi>
inline void activate_rows(T* u, const T* bias, int64_t B, int64_t H) {
  rows(B, H, [&](int64_t b) {
    T* __restrict__ r = u + b * H;
    if (bias) {
#pragma omp simd
      for (int64_t j = 0; j < H; ++j) r[j] = act<T, phi>(r[j] + bias[j]);
    } else {
#pragma omp simd
      for (int64_t j = 0; j < H; ++j) r[j] = act<T, phi>(r[j]);
    }
  });
}

template <typename T, int phi, bool skip>
std::vector<Tensor> forward_loop(Tensor& xw, const Tensor& w_hh, const Layers& mlp, const Tensor& hs,
                                 const bool* mask) {
  const int64_t Tn = xw.size(0), B = xw.size(1), H = hs.size(2), L = mlp.L;
  const int64_t n_saved = skip ? L : L - 1;
  std::vector<Tensor> us;  // u^(1) .. u^(n_saved), (T, B, H) each
  for (int64_t k = 0; k < n_saved; ++k) us.push_back(at::empty({Tn, B, H}, hs.options()));
  Tensor wT;
  const auto W = transposed<T>(w_hh, Tn, wT);
  std::vector<Tensor> wjT(L - 1);  // W_j^T for the per-step products
  std::vector<rnnlab_blas::Op<T>> Wj;
  std::vector<const T*> bj;  // b_j, or null without biases
  for (int64_t j = 2; j <= L; ++j) {
    Wj.push_back(transposed<T>(mlp.w[j - 2], Tn, wjT[j - 2]));
    bj.push_back(mlp.b.empty() ? nullptr : ptr<T>(mlp.b[j - 2]));
  }
  for (int64_t t = 0; t < Tn; ++t) {
    T *zp = at_step<T>(xw, t), *hp0 = at_step<T>(hs, t), *hp1 = at_step<T>(hs, t + 1);
    mm<T>(zp, H, hp0, H, W, B, T(1));  // z^(1) = xw_t + W_hh h_{t-1}   (B, H)
    // u^(j) goes to its saved sequence, or for j = L without skip straight into h_t
    auto dst = [&](int64_t j) { return j <= n_saved ? at_step<T>(us[j - 1], t) : hp1; };
    T* prev = dst(1);  // u^(1)
    rows(B, H, [&](int64_t b) {
      const T* __restrict__ zr = zp + b * H;
      T* __restrict__ ur = prev + b * H;
#pragma omp simd
      for (int64_t j = 0; j < H; ++j) ur[j] = act<T, phi>(zr[j]);
    });
    for (int64_t j = 2; j <= L; ++j) {
      T* u = dst(j);
      mm<T>(u, H, prev, H, Wj[j - 2], B, T(0));  // z^(j) = W_j u^(j-1) (+ b_j, added with phi)
      activate_rows<T, phi>(u, bj[j - 2], B, H);
      prev = u;
    }
    const T* uL = prev;
    Step s{mask ? mask + t * B : nullptr};
    rows(B, H, [&](int64_t b) {
      if (skip) {
#pragma omp simd
        for (int64_t j = 0; j < H; ++j) hp1[b * H + j] = uL[b * H + j] + hp0[b * H + j];  // h_t = u^(L) + h_{t-1}
      }
      if (!s.keep(b)) carry<T>(hp0, nullptr, hp1, nullptr, b, H);
    });
  }
  return us;
}

// From dh = dL/dh_t, down the MLP: du^(L) = dh; dz^(j) = du^(j) phi'(u^(j)),
// du^(j-1) = dz^(j) W_j for j = L..2; dz^(1) = du^(1) phi'(u^(1)) (into gates);
// dh_{t-1} = dz^(1) W_hh (+ dh: the skip).
template <typename T, int phi, bool skip>
std::vector<Tensor> backward_loop(Tensor& gx, const Tensor& w_hh, const Layers& mlp, const Tensor& hs,
                                  const std::vector<Tensor>& us, const Tensor& dhs, const bool* mask) {
  const int64_t Tn = gx.size(0), B = gx.size(1), H = hs.size(2), L = mlp.L;
  const int64_t n_saved = skip ? L : L - 1;
  Tensor dh = at::zeros({B, H}, hs.options()), dhp = at::empty({B, H}, hs.options());
  Tensor dm = mask ? at::empty({B, H}, hs.options()) : Tensor();  // dh at the real steps, else 0
  Tensor du = at::empty({B, H}, hs.options());
  T* dup = ptr<T>(du);
  const auto W = op<T>(w_hh);
  std::vector<rnnlab_blas::Op<T>> Wj;
  for (const Tensor& w : mlp.w) Wj.push_back(op<T>(w));
  std::vector<Tensor> dzs;  // dz^(2) .. dz^(L), (T, B, H) each
  for (int64_t j = 2; j <= L; ++j) dzs.push_back(at::empty({Tn, B, H}, hs.options()));
  for (int64_t t = Tn - 1; t >= 0; --t) {
    add_seq<T>(ptr<T>(dh), dhs, t);
    Step s{mask ? mask + t * B : nullptr};
    const T* d = ptr<T>(dh);
    if (mask) {
      T* q = ptr<T>(dm);
      rows(B, H, [&](int64_t b) {
        if (s.keep(b)) std::memcpy(q + b * H, d + b * H, H * sizeof(T));
        else std::memset(q + b * H, 0, H * sizeof(T));
      });
    }
    auto u_of = [&](int64_t j) { return j <= n_saved ? at_step<T>(us[j - 1], t) : at_step<T>(hs, t + 1); };
    const T* gp = mask ? ptr<T>(dm) : d;  // du^(j), the gradient reaching layer j's output
    for (int64_t j = L; j >= 2; --j) {
      T* dzp = at_step<T>(dzs[j - 2], t);
      const T* ap = u_of(j);
      rows(B, H, [&](int64_t b) {
#pragma omp simd
        for (int64_t k = b * H; k < (b + 1) * H; ++k) dzp[k] = act_grad<T, phi>(ap[k], gp[k]);
      });
      mm<T>(dup, H, dzp, H, Wj[j - 2], B, T(0));  // du^(j-1) = dz^(j) W_j
      gp = dup;
    }
    T* zp = at_step<T>(gx, t);
    {
      const T* ap = u_of(1);
      rows(B, H, [&](int64_t b) {
#pragma omp simd
        for (int64_t k = b * H; k < (b + 1) * H; ++k) zp[k] = act_grad<T, phi>(ap[k], gp[k]);
      });
    }
    T* dq = ptr<T>(dhp);
    if (skip) std::memcpy(dq, d, B * H * sizeof(T));
    mm<T>(dq, H, zp, H, W, B, T(skip ? 1 : 0));  // dh_{t-1} = (dh, the skip, +) dz^(1) W_hh
    if (mask) {
      rows(B, H, [&](int64_t b) {  // carried: dh_{t-1} = dh (dz^(1) is 0 there)
        if (!s.keep(b) && !skip) std::memcpy(dq + b * H, d + b * H, H * sizeof(T));
      });
    }
    std::swap(dh, dhp);
  }
  std::vector<Tensor> out{dh};
  for (const Tensor& dz : dzs) out.push_back(dz);
  return out;
}

}  // namespace

std::vector<Tensor> deep_transition_forward(int64_t opt, Tensor& xw, const Tensor& w_hh,
                                            const std::vector<Tensor>& extra,
                                            const std::vector<Tensor>& states, const bool* mask) {
  const Layers mlp(extra, opt >= 6);
  std::vector<Tensor> saved;
  AT_DISPATCH_FLOATING_TYPES(xw.scalar_type(), "rnnlab_compiled_deep_transition_forward", [&] {
    using T = scalar_t;
    with_phi(opt % 3, [&](auto phi) {
      constexpr int k = decltype(phi)::value;
      saved = (opt / 3) % 2 ? forward_loop<T, k, true>(xw, w_hh, mlp, states[0], mask)
                            : forward_loop<T, k, false>(xw, w_hh, mlp, states[0], mask);
    });
  });
  return saved;
}

std::vector<Tensor> deep_transition_backward(int64_t opt, Tensor& gates, const Tensor& w_hh,
                                             const std::vector<Tensor>& extra,
                                             const std::vector<Tensor>& states,
                                             const std::vector<Tensor>& saved,
                                             const std::vector<Tensor>& d_seqs, const bool* mask) {
  const Layers mlp(extra, opt >= 6);
  std::vector<Tensor> out;
  AT_DISPATCH_FLOATING_TYPES(gates.scalar_type(), "rnnlab_compiled_deep_transition_backward", [&] {
    using T = scalar_t;
    with_phi(opt % 3, [&](auto phi) {
      constexpr int k = decltype(phi)::value;
      out = (opt / 3) % 2
                ? backward_loop<T, k, true>(gates, w_hh, mlp, states[0], saved, d_seqs[0], mask)
                : backward_loop<T, k, false>(gates, w_hh, mlp, states[0], saved, d_seqs[0], mask);
    });
  });
  return out;
}

}  // namespace rnnlab_compiled
