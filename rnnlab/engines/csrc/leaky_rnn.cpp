// The compiled engine's loops for the leaky-unit RNN (rnnlab/cells/leaky_rnn_cell.py):
//
//   v_t = phi(xw_t + W_hh h_{t-1}),   h_t = a h_{t-1} + (1 - a) v_t = lerp(v_t, h_{t-1}, a)
//
// opt = phi (0 tanh, 1 relu, 2 sigmoid) + 3 * learned; extra = {the leak (fixed) or its logit
// (learned), () or (H,); in the forward, then b (H,) if xw is W_ih x_t without it}: a = the leak,
// or sigma(leak_logit), per unit (leak_values). The forward adds b per step, the gates' block
// being in cache there (no broadcast copy of b over all of xw), and keeps v_t in xw (the saved
// gates). The backward returns dh_0 and, for a learned leak,
// dL/d(leak_logit) = sum_t sum_b dh (h_{t-1} - v_t) a (1 - a) in leak_logit's shape, whole: the
// engine hands it on as it is (compiled.py), no reduction left to Python.
#include "common.h"

namespace rnnlab_compiled {
namespace {

// a (H,): the fixed leak, or sigma(leak_logit) (with the C library's exp, as torch.sigmoid),
// one value given to every unit when the leak is a scalar
template <typename T> std::vector<T> leak_values(const Tensor& leak, bool learned, int64_t H) {
  const T* v = ptr<T>(leak);
  const int64_t step = leak.numel() == 1 ? 0 : 1;
  std::vector<T> a(H);
  for (int64_t j = 0; j < H; ++j) {
    const T x = v[j * step];
    a[j] = learned ? T(1) / (T(1) + std::exp(-x)) : x;
  }
  return a;
}

template <typename T, int phi>
void forward_loop(Tensor& xw, const Tensor& w_hh, const Tensor& leak, bool learned, const Tensor& hs,
                  const Tensor& bias, const bool* mask) {
  const int64_t Tn = xw.size(0), B = xw.size(1), H = hs.size(2);
  Tensor wT;
  const auto W = transposed<T>(w_hh, Tn, wT);
  const std::vector<T> av = leak_values<T>(leak, learned, H);
  const T* a = av.data();
  // b (H,) when xw is W_ih x_t alone (the engine leaves the bias to this loop), else zeros
  std::vector<T> bv(H, T(0));
  if (bias.defined()) std::memcpy(bv.data(), ptr<T>(bias), H * sizeof(T));
  const T* bb = bv.data();
  for (int64_t t = 0; t < Tn; ++t) {
    T *zp = at_step<T>(xw, t), *hp0 = at_step<T>(hs, t), *hp1 = at_step<T>(hs, t + 1);
    mm<T>(zp, H, hp0, H, W, B, T(1));  // z = xw_t + W_hh h_{t-1}   (B, H)
    Step s{mask ? mask + t * B : nullptr};
    rows(B, H, [&](int64_t b) {
      T* __restrict__ zr = zp + b * H;
      const T* __restrict__ h = hp0 + b * H;
      T* __restrict__ hn = hp1 + b * H;
#pragma omp simd
      for (int64_t j = 0; j < H; ++j) {
        const T v = act<T, phi>(zr[j] + bb[j]);  // z = W_ih x_t + W_hh h_{t-1} + b
        zr[j] = v;                            // v_t, saved
        hn[j] = lerp_torch(v, h[j], a[j]);    // h_t = lerp(v_t, h_{t-1}, a)
      }
      if (!s.keep(b)) carry<T>(hp0, nullptr, hp1, nullptr, b, H);
    });
  }
}

// With dh = dL/dh_t: da_t = dh (h_{t-1} - v_t) (learned leak), dz = phi'(v_t) dh (1 - a) (over
// v_t in gates), dh_{t-1} = dh a + dz W_hh.
template <typename T, int phi, bool learned>
std::vector<Tensor> backward_loop(Tensor& gx, const Tensor& w_hh, const Tensor& leak,
                                  const Tensor& hs, const Tensor& dhs, const bool* mask) {
  const int64_t Tn = gx.size(0), B = gx.size(1), H = hs.size(2);
  Tensor dh = at::zeros({B, H}, hs.options()), dhp = at::empty({B, H}, hs.options());
  Tensor da = learned ? at::zeros({B, H}, hs.options()) : Tensor();  // sum_t da_t
  T* dap = learned ? ptr<T>(da) : nullptr;
  const std::vector<T> av = leak_values<T>(leak, learned, H);
  const T* a = av.data();
  const auto W = op<T>(w_hh);
  for (int64_t t = Tn - 1; t >= 0; --t) {
    add_seq<T>(ptr<T>(dh), dhs, t);
    T *zp = at_step<T>(gx, t), *d = ptr<T>(dh), *dq = ptr<T>(dhp);
    const T* hp0 = at_step<T>(hs, t);
    Step s{mask ? mask + t * B : nullptr};
    rows(B, H, [&](int64_t b) {
      const T zero = T(0);
      const bool keep = s.keep(b);  // a padded step: the cell sees no gradient
      T* __restrict__ zr = zp + b * H;
      T* __restrict__ q = dq + b * H;
      const T* __restrict__ g = d + b * H;
      const T* __restrict__ h = hp0 + b * H;
      T* __restrict__ dar = learned ? dap + b * H : nullptr;
      if (learned && keep) {
#pragma omp simd
        for (int64_t j = 0; j < H; ++j) dar[j] += g[j] * (h[j] - zr[j]);  // + da_t
      }
#pragma omp simd
      for (int64_t j = 0; j < H; ++j) {
        const T dht = keep ? g[j] : zero, v = zr[j];
        zr[j] = act_grad<T, phi>(v, dht) * (T(1) - a[j]);    // dz
        q[j] = dht * a[j];                                   // dh a
      }
    });
    mm<T>(dq, H, zp, H, W, B, T(1));  // + dz W_hh
    if (mask) rows(B, H, [&](int64_t b) {  // the carried state's gradient at padded steps
      if (!s.keep(b)) std::memcpy(dq + b * H, d + b * H, H * sizeof(T));
    });
    std::swap(dh, dhp);
  }
  if (!learned) return {dh};
  // dL/d(leak_logit) = sum_t sum_b da_t * a (1 - a) (sigma's derivative), in the leak's shape:
  // (H,) per unit, () summed over the units too for a scalar leak
  Tensor dlogit = at::empty(leak.sizes(), hs.options());
  T* dl = ptr<T>(dlogit);
  const bool scalar = leak.numel() == 1;
  if (scalar) dl[0] = T(0);
  for (int64_t j = 0; j < H; ++j) {
    T sum = T(0);
    for (int64_t b = 0; b < B; ++b) sum += dap[b * H + j];
    const T g = sum * a[j] * (T(1) - a[j]);
    if (scalar) dl[0] += g; else dl[j] = g;
  }
  return {dh, dlogit};
}

}  // namespace

std::vector<Tensor> leaky_forward(int64_t opt, Tensor& xw, const Tensor& w_hh,
                                  const std::vector<Tensor>& extra,
                                  const std::vector<Tensor>& states, const bool* mask) {
  AT_DISPATCH_FLOATING_TYPES(xw.scalar_type(), "rnnlab_compiled_leaky_forward", [&] {
    using T = scalar_t;
    with_phi(opt % 3, [&](auto phi) {
      forward_loop<T, decltype(phi)::value>(xw, w_hh, extra[0], opt >= 3, states[0],
                                            extra.size() > 1 ? extra[1] : Tensor(), mask);
    });
  });
  return {};
}

std::vector<Tensor> leaky_backward(int64_t opt, Tensor& gates, const Tensor& w_hh,
                                   const std::vector<Tensor>& extra,
                                   const std::vector<Tensor>& states,
                                   const std::vector<Tensor>& saved,
                                   const std::vector<Tensor>& d_seqs, const bool* mask) {
  std::vector<Tensor> out;
  AT_DISPATCH_FLOATING_TYPES(gates.scalar_type(), "rnnlab_compiled_leaky_backward", [&] {
    using T = scalar_t;
    with_phi(opt % 3, [&](auto phi) {
      constexpr int k = decltype(phi)::value;
      out = opt >= 3 ? backward_loop<T, k, true>(gates, w_hh, extra[0], states[0], d_seqs[0], mask)
                     : backward_loop<T, k, false>(gates, w_hh, extra[0], states[0], d_seqs[0], mask);
    });
  });
  return out;
}

}  // namespace rnnlab_compiled
