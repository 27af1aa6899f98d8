// The LSTM's row kernels (rnnlab/cells/lstm_cell.py), forward and derivative side by side:
//
//   i = sigma(z_i + w_ci C_{t-1}),  f = sigma(z_f + w_cf C_{t-1}),  g = tanh(z_g + w_cc C_{t-1})
//   C_t = f C_{t-1} + i g            (no forget gate: C_t = C_{t-1} + i g)
//   o = sigma(z_o + w_co C_t),       h_t = o tanh(q),  q = C_t  (layer norm: g_c LN(C_t) + b_c)
//
// z = W_ih x_t + W_hh h_{t-1} + b (gate order i, f, g, o; the driver's); the peephole terms w C
// are products w * C (diagonal, per unit) or C W^T (full, a Product each); w_cc only with
// ``peephole_candidate`` (the notes' "not standard" candidate peephole). The forward leaves
// i, f, g, o in z; the backward overwrites them with dz:
//
//   do = dh tanh(q),  dq = dh o (1 - tanh^2 q),  dC_t = dC + dq (layer norm: LN'(g_c dq)) + dz_o w_co
//   dz_o = do o (1 - o),  dz_i = dC_t g i (1 - i),  dz_f = dC_t C_{t-1} f (1 - f),
//   dz_g = dC_t i (1 - g^2),  dC_{t-1} = dC_t f + dz_i w_ci + dz_f w_cf + dz_g w_cc,
//   dh_{t-1} = dz W_hh (the driver's Product)
#include "driver.h"

#include <type_traits>

namespace rnnlab_compiled {
namespace {

// The row kernels, on one batch row's gate blocks (each its own __restrict__ pointer: the blocks
// never overlap, so the loops vectorise without alias checks). pk: 0 no peepholes, 1 diagonal,
// 2 full (their products added to z by the caller); cand: w_cc; fused: o and h_t in the same
// pass (not with full peepholes, whose w_co C_t is a product, nor with layer norm, which needs
// C_t's mean and variance first).
template <typename T, bool fg, int pk, bool cand, bool fused>
inline void lstm_row(T* __restrict__ zi, T* __restrict__ zf, T* __restrict__ zg, T* __restrict__ zo,
                     const T* __restrict__ c, T* __restrict__ cn, T* __restrict__ hn,
                     const T* __restrict__ wci, const T* __restrict__ wcf, const T* __restrict__ wcc,
                     const T* __restrict__ wco, int64_t H) {
#pragma omp simd
  for (int64_t j = 0; j < H; ++j) {
    const T i = sigm(pk == 1 ? zi[j] + wci[j] * c[j] : zi[j]);
    const T g = tanh_(pk == 1 && cand ? zg[j] + wcc[j] * c[j] : zg[j]);
    T cnew = c[j] + i * g;
    if (fg) {
      const T f = sigm(pk == 1 ? zf[j] + wcf[j] * c[j] : zf[j]);
      zf[j] = f;
      cnew = f * c[j] + i * g;
    }
    zi[j] = i;
    zg[j] = g;
    cn[j] = cnew;
    if (fused) {
      const T o = sigm(pk == 1 ? zo[j] + wco[j] * cnew : zo[j]);
      zo[j] = o;
      hn[j] = o * tanh_(cnew);
    }
  }
}

// o and h_t = o tanh(q) once C_t is known: q = C_t, or g_c (C_t - mu) / s + b_c (mu, 1/s of C_t)
template <typename T, int pk, bool ln>
inline void lstm_out_row(T* __restrict__ zo, const T* __restrict__ cn, T* __restrict__ hn,
                         const T* __restrict__ wco, const T* __restrict__ gc, const T* __restrict__ bc,
                         T mu, T is, int64_t H) {
#pragma omp simd
  for (int64_t j = 0; j < H; ++j) {
    const T o = sigm(pk == 1 ? zo[j] + wco[j] * cn[j] : zo[j]);
    zo[j] = o;
    hn[j] = o * tanh_(ln ? gc[j] * ((cn[j] - mu) * is) + bc[j] : cn[j]);
  }
}

// its derivative: dz_o over o, dC_t = dC + dq (layer norm: LN'(g_c dq), dg_c += dq y,
// db_c += dq) + dz_o w_co (diagonal) into dct, dq = dh o (1 - tanh^2 q)
template <typename T, int pk, bool ln>
inline void lstm_out_back_row(T* __restrict__ zo, const T* __restrict__ cn, const T* __restrict__ dh,
                              const T* __restrict__ dc, T* __restrict__ dct, const T* __restrict__ wco,
                              T* __restrict__ co, const T* __restrict__ gc, const T* __restrict__ bc,
                              T* __restrict__ dgc, T* __restrict__ dbc, T mu, T is, int64_t H) {
  T s1 = T(0), s2 = T(0);
#pragma omp simd reduction(+ : s1, s2)
  for (int64_t j = 0; j < H; ++j) {
    const T y = (cn[j] - mu) * is, tc = tanh_(ln ? gc[j] * y + bc[j] : cn[j]), o = zo[j];
    const T dq = dh[j] * o * (T(1) - tc * tc), dzo = dh[j] * tc * (o * (T(1) - o));
    zo[j] = dzo;
    if (ln) {
      dgc[j] += dq * y;
      dbc[j] += dq;
      s1 += gc[j] * dq;
      s2 += gc[j] * dq * y;
      dct[j] = gc[j] * dq;
    } else {
      dct[j] = dc[j] + dq;
    }
  }
  s1 /= T(H), s2 /= T(H);
#pragma omp simd
  for (int64_t j = 0; j < H; ++j) {
    if (ln) dct[j] = dc[j] + (dct[j] - s1 - (cn[j] - mu) * is * s2) * is;
    if (pk == 1) dct[j] += zo[j] * wco[j], co[j] += zo[j] * cn[j];
  }
}

// the rest of the derivative: dz_i, dz_f, dz_g over the gates, dC_{t-1} into dcq (which holds
// dC_t unless fused; fused: dz_o and dC_t here too); ci .. co: the diagonal peepholes' sums
template <typename T, bool fg, int pk, bool cand, bool fused>
inline void lstm_back_row(T* __restrict__ zi, T* __restrict__ zf, T* __restrict__ zg, T* __restrict__ zo,
                          const T* __restrict__ c0, const T* __restrict__ c1, const T* __restrict__ dh,
                          const T* __restrict__ dc, T* __restrict__ dcq, const T* __restrict__ wci,
                          const T* __restrict__ wcf, const T* __restrict__ wcc, const T* __restrict__ wco,
                          T* __restrict__ ci, T* __restrict__ cf, T* __restrict__ cc, T* __restrict__ co,
                          int64_t H) {
#pragma omp simd
  for (int64_t j = 0; j < H; ++j) {
    T dct = dcq[j];
    if (fused) {
      const T tc = tanh_(c1[j]), o = zo[j];
      const T dzo = dh[j] * tc * (o * (T(1) - o));
      dct = dc[j] + dh[j] * o * (T(1) - tc * tc);
      if (pk == 1) dct += dzo * wco[j], co[j] += dzo * c1[j];
      zo[j] = dzo;
    }
    const T i = zi[j], g = zg[j];
    const T dzi = dct * g * (i * (T(1) - i)), dzg = dct * i * (T(1) - g * g);
    T dcprev = dct;
    if (fg) {
      const T f = zf[j], dzf = dct * c0[j] * (f * (T(1) - f));
      zf[j] = dzf;
      dcprev = dct * f;
      if (pk == 1) dcprev += dzf * wcf[j], cf[j] += dzf * c0[j];
    }
    if (pk == 1) {
      dcprev += dzi * wci[j];
      ci[j] += dzi * c0[j];
      if (cand) dcprev += dzg * wcc[j], cc[j] += dzg * c0[j];
    }
    zi[j] = dzi;
    zg[j] = dzg;
    dcq[j] = dcprev;
  }
}

template <typename T, bool fg, int pk>  // pk: 0 no peepholes, 1 diagonal, 2 full
struct Lstm {
  static constexpr int states = 2;
  Ctx<T>& c;
  const int64_t B, H, GH, nf;  // nf: the sigmoid gates before g (i, f or i)
  const bool cand, ln, two;    // two passes: o waits for C_t's product (full) or its LN
  Product<T> hh;
  std::vector<Product<T>> peep;  // full: ci, cf, cc, co (those the options have)
  // full, over many steps: the products of C_{t-1} (ci, cf, cc: z's first columns) as one, with
  // the weights stacked [W_ci; W_cf; W_cc] (n rows), W^T and W copies its operands
  int64_t npre = 0;
  Tensor pre_w, pre_wT;
  rnnlab_blas::Op<T> pre_fw{}, pre_bw{};
  rnnlab_panels::Packed pre_pf, pre_pb;  // the same packed (panels.h), where that kernel is faster
  Route<T> pre_route;
  const T *wci = nullptr, *wcf = nullptr, *wcc = nullptr, *wco = nullptr, *gc = nullptr, *bc = nullptr;
  Acc<T> dci, dcf, dcc, dco, dgc, dbc;

  explicit Lstm(Ctx<T>& c_)
      : c(c_), B(c.B), H(c.H), GH(c.GH), nf(fg ? 2 * c.H : c.H), cand(c.cfg.peephole_candidate),
        ln(c.cfg.layer_norm), two(pk == 2 || c.cfg.layer_norm),
        hh(c, "weight_hh", 0, GH, c.prev(0), 0, true, "bias_hh", "ln_gain_hh", GH / c.H) {
    const std::vector<std::pair<std::string, int64_t>> names = {
        {"weight_ci", 0}, {fg ? "weight_cf" : "", H}, {cand ? "weight_cc" : "", nf}, {"weight_co", GH - H}};
    for (const auto& nc : names) {
      if (pk != 2 || nc.first.empty()) continue;
      peep.emplace_back(c, nc.first, 0, H, nc.first == "weight_co" ? c.next(1) : c.prev(1), nc.second, false);
    }
    if (pk == 2 && c.Tn >= 16 && peep.size() > 2) {
      std::vector<Tensor> ws;
      for (size_t k = 0; k + 1 < peep.size(); ++k) ws.push_back(c.p.at(peep[k].weight));
      pre_w = at::cat(ws), pre_wT = pre_w.t().contiguous(), npre = pre_w.size(0);
      pre_fw = rnnlab_blas::op<T>(pre_wT), pre_bw = rnnlab_blas::op<T>(pre_w);
      if (c.given.empty() && packs<T>(B, c.Tn, c.onednn, pre_w)) pre_pf.pack(pre_fw);
      if (packs<T>(B, c.Tn, c.onednn, pre_wT)) pre_pb.pack(pre_bw);
      pre_route.init(pre_w, B, c.Tn, c.onednn && !pre_pf.defined(), c.given.empty());
    }
    if (pk == 1) {
      wci = c.w("weight_ci"), wco = c.w("weight_co");
      dci.init(B, H, c.opts), dco.init(B, H, c.opts);
      if (fg) wcf = c.w("weight_cf"), dcf.init(B, H, c.opts);
      if (cand) wcc = c.w("weight_cc"), dcc.init(B, H, c.opts);
    }
    if (ln) gc = c.w("ln_gain_c"), bc = c.w("ln_bias_c"), dgc.init(B, H, c.opts), dbc.init(B, H, c.opts);
  }

  // f(cand, fused) with both as compile-time constants
  template <typename F> void variant(const F& f) const {
    auto by_two = [&](auto cand) { two ? f(cand, std::false_type()) : f(cand, std::true_type()); };
    pk != 0 && cand ? by_two(std::true_type()) : by_two(std::false_type());
  }

  // o and h_t of row b once C_t is in: the pass after the gates' (full peepholes, layer norm)
  void out_row(T* z, const T* c1, T* h1, int64_t b) const {
    T mu = T(0), is = T(1);
    const T* cn = c1 + b * H;
    if (ln) moments(cn, H, mu, is);
    (ln ? lstm_out_row<T, pk, true> : lstm_out_row<T, pk, false>)(z + b * GH + GH - H, cn, h1 + b * H, wco, gc, bc, mu, is, H);
  }
  // dz_o and dC_t (into dcp) of row b, the first pass of the derivative when two
  void out_back_row(T* z, const T* c1, const T* dh, const T* dc, T* dcp, int64_t b) const {
    T mu = T(0), is = T(1);
    const T* cn = c1 + b * H;
    if (ln) moments(cn, H, mu, is);
    (ln ? lstm_out_back_row<T, pk, true> : lstm_out_back_row<T, pk, false>)(
        z + b * GH + GH - H, cn, dh + b * H, dc + b * H, dcp + b * H, wco, dco.row(b), gc, bc,
        dgc.row(b), dbc.row(b), mu, is, H);
  }

  // one pass over each row where it can: the recurrent product's layer norm, the gates, and
  // (layer norm, no full peepholes) C_t's moments, o and h_t; full peepholes: a second pass after
  // z_o += C_t W_co^T
  void forward(int64_t t, T* z, T* const* prev, T* const* next) {
    const T *h0 = prev[0], *c0 = prev[1];
    T *h1 = next[0], *c1 = next[1];
    hh.product(t, h0, z, GH, true);
    if (const T* y = npre ? pre_route.forward(c0, H) : nullptr) {  // z_{i,f,g} += C_{t-1} [W_ci; W_cf; W_cc]^T
      rows(B, npre, [&](int64_t b) { for (int64_t j = 0; j < npre; ++j) z[b * GH + j] += y[b * npre + j]; });
    } else if (npre) {
      mul<T>(z, GH, c0, H, pre_fw, pre_pf, B, true);
    }
    else if (pk == 2) for (size_t k = 0; k + 1 < peep.size(); ++k) peep[k].forward(t, c0, z + peep[k].zcol, GH, true);
    const bool fin = hh.rowwise(), one = two && pk != 2;
    variant([&](auto cand_, auto fused) {
      auto row = [&](int64_t b) {
        T* zr = z + b * GH;
        lstm_row<T, fg, pk, decltype(cand_)::value, decltype(fused)::value>(
            zr, zr + H, zr + nf, zr + GH - H, c0 + b * H, c1 + b * H, h1 + b * H, wci, wcf, wcc, wco, H);
      };
      if (!fin && !one) return rows(B, GH, row);  // (the plain loop where nothing else joins it)
      rows(B, GH, [&](int64_t b) {
        if (fin) hh.finish_row(t, b, z, GH, true);
        row(b);
        if (one) out_row(z, c1, h1, b);
      });
    });
    if (pk != 2 || !two) return;
    peep.back().forward(t, c1, z + GH - H, GH, true);  // z_o += C_t W_co^T
    rows(B, H, [&](int64_t b) { out_row(z, c1, h1, b); });
  }

  void backward(int64_t t, T* z, T* const* prev, T* const* next, T* const* dn, T* const* dp) {
    const T *c0 = prev[1], *c1 = next[1], *dh = dn[0], *dc = dn[1];
    T* dcp = dp[1];
    const bool one = two && pk != 2, prep = hh.prepares(), pprep = npre && peep[0].prepares();
    if (two && pk == 2) {  // dz_o and dC_t (into dcp) first: full peepholes add dz_o W_co to dC_t
      rows(B, H, [&](int64_t b) { out_back_row(z, c1, dh, dc, dcp, b); });
      peep.back().backward(t, z + GH - H, GH, dcp, true);  // dC_t += dz_o W_co
    }
    variant([&](auto cand_, auto fused) {
      auto row = [&](int64_t b) {
        T* zr = z + b * GH;
        lstm_back_row<T, fg, pk, decltype(cand_)::value, decltype(fused)::value>(
            zr, zr + H, zr + nf, zr + GH - H, c0 + b * H, c1 + b * H, dh + b * H, dc + b * H, dcp + b * H,
            wci, wcf, wcc, wco, dci.row(b), dcf.row(b), dcc.row(b), dco.row(b), H);
      };
      if (!one && !prep && !pprep) return rows(B, GH, row);
      rows(B, GH, [&](int64_t b) {
        if (one) out_back_row(z, c1, dh, dc, dcp, b);
        row(b);
        if (prep) hh.prepare_row(t, b, z, GH);
        for (size_t k = 0; pprep && k + 1 < peep.size(); ++k) peep[k].prepare_row(t, b, z + peep[k].zcol, GH);
      });
    });
    if (const T* y = npre && !pre_pb.defined() ? pre_route.backward(z, GH) : nullptr) {  // dC_{t-1} += dz_{i,f,g} [W_ci; W_cf; W_cc]
      for (int64_t k = 0; k < B * H; ++k) dcp[k] += y[k];
    } else if (npre) {
      mul<T>(dcp, H, z, GH, pre_bw, pre_pb, B, true);
    }
    else if (pk == 2) for (size_t k = 0; k + 1 < peep.size(); ++k) peep[k].backward(t, z + peep[k].zcol, GH, dcp, true);
    hh.product_back(t, z, GH, dp[0], false);
  }

  void entries(std::vector<Entry>& e, const Tensor& dbz) const {
    hh.entries(e, c, dbz);
    for (const auto& q : peep) q.entries(e, c, dbz);
    const std::pair<const char*, const Acc<T>*> sums[] = {
        {"weight_ci", &dci}, {"weight_cf", &dcf}, {"weight_cc", &dcc}, {"weight_co", &dco},
        {"ln_gain_c", &dgc}, {"ln_bias_c", &dbc}};
    for (const auto& s : sums) if (s.second->buf.defined()) e.emplace_back(s.first, s.second->buf.sum(0), c10::nullopt);
  }
};

template <typename T, bool fg> std::shared_ptr<Run> with_peephole(Ctx<T>&& c) {
  switch (c.cfg.peephole) {
    case Peephole::none: return std::make_shared<Loop<T, Lstm<T, fg, 0>>>(std::move(c));
    case Peephole::diagonal: return std::make_shared<Loop<T, Lstm<T, fg, 1>>>(std::move(c));
    default: return std::make_shared<Loop<T, Lstm<T, fg, 2>>>(std::move(c));
  }
}

}  // namespace

template <typename T> std::shared_ptr<Run> make_lstm(Ctx<T>&& c) {
  return c.cfg.forget_gate ? with_peephole<T, true>(std::move(c)) : with_peephole<T, false>(std::move(c));
}
template std::shared_ptr<Run> make_lstm<float>(Ctx<float>&&);
template std::shared_ptr<Run> make_lstm<double>(Ctx<double>&&);

}  // namespace rnnlab_compiled
