// The compiled engine's open-loop loops for the output-feedback cell (rnnlab/cells/
// output_feedback_cell.py) and the purely output-recurrent cell (output_recurrent_cell.py):
//
//   s_t = a(xw_t + V s_{t-1} + W y_{t-1})      (output-recurrent: no V s_{t-1})
//   y_t = g(W_hy s_t + b_y)
//
// opt = a (0 tanh, 1 relu, 2 sigmoid) + 4 * g (0 tanh, 2 sigmoid, 3 identity) + 16 * (no V);
// w_hh is V (unread without it); extra = {W (H, O), W_hy (O, H), b_y (O,) with ``bias``}. The
// states are s (T+1, B, H) and y (T+1, B, O); nothing else is saved (xw holds z afterwards, the
// backward's scratch for dz). The backward returns ds_0, dy_0, then dzy (T*B, O), the cell's
// d_rec. Teacher forcing has its own paths (the cells' run_teacher_forced), not these loops.
#include "common.h"

namespace rnnlab_compiled {
namespace {

// y = g(y + b_y) in place over one row of n outputs (no bias: b_y null), g the output
// activation's code (0 tanh, 2 sigmoid, 3 identity); a run-time choice (the O outputs are few),
// so the loops are compiled once per a
template <typename T>
inline void output_act(T* __restrict__ y, const T* __restrict__ by, int64_t n, int g) {
  if (by) for (int64_t k = 0; k < n; ++k) y[k] += by[k];
  if (g == 0) for (int64_t k = 0; k < n; ++k) y[k] = act<T, 0>(y[k]);
  else if (g == 2) for (int64_t k = 0; k < n; ++k) y[k] = act<T, 2>(y[k]);
}
// dzy = dy g'(zy), from y = g(zy)
template <typename T>
inline void output_act_grad(T* __restrict__ dzy, const T* __restrict__ y, const T* __restrict__ dy,
                            int64_t n, int g) {
  if (g == 0) for (int64_t k = 0; k < n; ++k) dzy[k] = act_grad<T, 0>(y[k], dy[k]);
  else if (g == 2) for (int64_t k = 0; k < n; ++k) dzy[k] = act_grad<T, 2>(y[k], dy[k]);
  else for (int64_t k = 0; k < n; ++k) dzy[k] = dy[k];
}

template <typename T, int a>
void forward_loop(Tensor& xw, const Tensor& v, const std::vector<Tensor>& extra, const Tensor& ss,
                  const Tensor& ys, const bool* mask, int g, bool has_v) {
  const int64_t Tn = xw.size(0), B = xw.size(1), H = ss.size(2), O = ys.size(2);
  Tensor vT, wT, whyT;  // the row-major copies of V^T, W^T, W_hy^T, if made
  const T* by = extra.size() > 2 ? ptr<T>(extra[2]) : nullptr;  // b_y
  const auto V = has_v ? transposed<T>(v, Tn, vT) : rnnlab_blas::Op<T>{}, W = transposed<T>(extra[0], Tn, wT),
             Why = transposed<T>(extra[1], Tn, whyT);
  for (int64_t t = 0; t < Tn; ++t) {
    T *zp = at_step<T>(xw, t), *sp0 = at_step<T>(ss, t), *yp0 = at_step<T>(ys, t),
      *sp1 = at_step<T>(ss, t + 1), *yp1 = at_step<T>(ys, t + 1);
    if (has_v) mm<T>(zp, H, sp0, H, V, B, T(1));  // + V s_{t-1}
    mm<T>(zp, H, yp0, O, W, B, T(1));             // + W y_{t-1}   (B, H)
    rows(B, H, [&](int64_t b) {
#pragma omp simd
      for (int64_t k = b * H; k < (b + 1) * H; ++k) sp1[k] = act<T, a>(zp[k]);  // s_t
    });
    mm<T>(yp1, O, sp1, H, Why, B, T(0));  // zy = W_hy s_t (+ b_y, added with g)   (B, O)
    Step s{mask ? mask + t * B : nullptr};
    rows(B, O, [&](int64_t b) {
      output_act<T>(yp1 + b * O, by, O, g);  // y_t = g(zy)
      if (!s.keep(b)) {
        carry<T>(sp0, nullptr, sp1, nullptr, b, H);
        carry<T>(yp0, nullptr, yp1, nullptr, b, O);
      }
    });
  }
}

// From ds = dL/ds_t, dy = dL/dy_t: dzy = dy g'(zy); dz = (ds + dzy W_hy) a'(z) (into gates);
// ds_{t-1} = dz V (output-recurrent: 0), dy_{t-1} = dz W.
template <typename T, int a>
std::vector<Tensor> backward_loop(Tensor& gx, const Tensor& v, const std::vector<Tensor>& extra,
                                  const Tensor& ss, const Tensor& ys, const Tensor& dss,
                                  const Tensor& dys, const bool* mask, int g, bool has_v) {
  const int64_t Tn = gx.size(0), B = gx.size(1), H = ss.size(2), O = ys.size(2);
  const auto opts = ss.options();
  Tensor ds = at::zeros({B, H}, opts), dy = at::zeros({B, O}, opts);
  Tensor dsp = at::empty({B, H}, opts), dyp = at::empty({B, O}, opts), dd = at::empty({B, H}, opts);
  Tensor dzy = at::empty({Tn, B, O}, opts);
  const auto W = op<T>(extra[0]), Why = op<T>(extra[1]), V = has_v ? op<T>(v) : rnnlab_blas::Op<T>{};
  T* ddp = ptr<T>(dd);
  for (int64_t t = Tn - 1; t >= 0; --t) {
    add_seq<T>(ptr<T>(ds), dss, t);
    add_seq<T>(ptr<T>(dy), dys, t);
    Step s{mask ? mask + t * B : nullptr};
    T *dzyp = at_step<T>(dzy, t), *zp = at_step<T>(gx, t), *dsq = ptr<T>(dsp), *dyq = ptr<T>(dyp);
    const T *yp1 = at_step<T>(ys, t + 1), *sp1 = at_step<T>(ss, t + 1);
    const T *dsc = ptr<T>(ds), *dyc = ptr<T>(dy);
    rows(B, O, [&](int64_t b) {
      const bool keep = s.keep(b);  // a padded step: the cell sees no gradient
      if (keep) output_act_grad<T>(dzyp + b * O, yp1 + b * O, dyc + b * O, O, g);
      else std::memset(dzyp + b * O, 0, O * sizeof(T));
#pragma omp simd
      for (int64_t k = b * H; k < (b + 1) * H; ++k) ddp[k] = keep ? dsc[k] : T(0);
    });
    mm<T>(ddp, H, dzyp, O, Why, B, T(1));  // ds + dzy W_hy
    rows(B, H, [&](int64_t b) {
#pragma omp simd
      for (int64_t k = b * H; k < (b + 1) * H; ++k) zp[k] = act_grad<T, a>(sp1[k], ddp[k]);  // dz
    });
    if (has_v) mm<T>(dsq, H, zp, H, V, B, T(0));  // ds_{t-1} = dz V
    else std::memset(dsq, 0, B * H * sizeof(T));
    mm<T>(dyq, O, zp, H, W, B, T(0));             // dy_{t-1} = dz W
    if (mask) {
      rows(B, H, [&](int64_t b) {  // the carried states' gradients at padded steps
        if (s.keep(b)) return;
        std::memcpy(dsq + b * H, dsc + b * H, H * sizeof(T));
        std::memcpy(dyq + b * O, dyc + b * O, O * sizeof(T));
      });
    }
    std::swap(ds, dsp);
    std::swap(dy, dyp);
  }
  return {ds, dy, dzy.view({Tn * B, O})};
}

}  // namespace

std::vector<Tensor> output_feedback_forward(int64_t opt, Tensor& xw, const Tensor& w_hh,
                                            const std::vector<Tensor>& extra,
                                            const std::vector<Tensor>& states, const bool* mask) {
  AT_DISPATCH_FLOATING_TYPES(xw.scalar_type(), "rnnlab_compiled_output_feedback_forward", [&] {
    using T = scalar_t;
    with_phi(opt % 4, [&](auto a) {
      forward_loop<T, decltype(a)::value>(xw, w_hh, extra, states[0], states[1], mask,
                                          (opt / 4) % 4, opt < 16);
    });
  });
  return {};
}

std::vector<Tensor> output_feedback_backward(int64_t opt, Tensor& gates, const Tensor& w_hh,
                                             const std::vector<Tensor>& extra,
                                             const std::vector<Tensor>& states,
                                             const std::vector<Tensor>& saved,
                                             const std::vector<Tensor>& d_seqs, const bool* mask) {
  std::vector<Tensor> out;
  AT_DISPATCH_FLOATING_TYPES(gates.scalar_type(), "rnnlab_compiled_output_feedback_backward", [&] {
    using T = scalar_t;
    with_phi(opt % 4, [&](auto a) {
      out = backward_loop<T, decltype(a)::value>(gates, w_hh, extra, states[0], states[1], d_seqs[0],
                                                 d_seqs[1], mask, (opt / 4) % 4, opt < 16);
    });
  });
  return out;
}

}  // namespace rnnlab_compiled
