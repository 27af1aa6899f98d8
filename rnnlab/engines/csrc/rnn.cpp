// The row kernels of the vanilla, leaky-unit, residual, deep-transition and output-recurrence
// cells (rnnlab/cells/*.py), forward and derivative side by side; z = W_ih x_t + W_hh h~_{t-1} + b
// is the driver's (h~ = m h_{t-1} under recurrent dropout; layer normalised by the driver), phi
// the nonlinearity, phi' from its output.
//
//   vanilla:   h_t = phi(z)                              dz = dh phi'
//   leaky:     v = phi(z), h_t = lerp(v, h_{t-1}, a)      dz = dh (1 - a) phi',  dh_{t-1} += dh a,
//              a = the leak or sigma(leak_logit)          dL/d(leak_logit) = sum dh (h_{t-1} - v) a (1 - a)
//   residual:  s_t = s_{t-1} + r,  r = phi(z_r)           dz_r = ds phi',  ds_{t-1} += ds
//     gated:   s_t = s_{t-1} + i r, i = sigma(z_i)        dz_r = ds i phi',  dz_i = ds r i (1 - i)
//   deep transition: u1 = phi(z), u_j = phi(W_j u_{j-1} + b_j) (j = 2..L, a Product each),
//              h_t = u_L + h_{t-1} (skip) or u_L        dz_j = du_j phi'(u_j), du_{j-1} = dz_j W_j
//   output feedback: s_t = a(z + W y_{t-1}), y_t = g(W_hy s_t + b_y) (Products W, W_hy);
//              output recurrent: no W_hh, z + W y~_{t-1} (m on y_{t-1})
//              dzy = dy g', dz = (ds + dzy W_hy) a', ds_{t-1} = dz V, dy_{t-1} = dz W
#include "driver.h"

namespace rnnlab_compiled {
namespace {

template <typename T, int phi, Kind kind>  // kind: rnn, leaky or residual
struct Simple {
  static constexpr int states = 1;
  Ctx<T>& c;
  const int64_t B, H, GH;
  const bool gated;
  Product<T> hh;
  std::vector<T> a;  // the leak per unit
  Tensor leak;       // the fixed leak or its logit, as given
  Acc<T> da;         // sum dh (h_{t-1} - v): the learned leak's gradient before sigma'

  explicit Simple(Ctx<T>& c_)
      : c(c_), B(c.B), H(c.H), GH(c.GH), gated(c.cfg.gated),
        hh(c, "weight_hh", 0, GH, c.prev(0), 0, true, "bias_hh", "ln_gain_hh", GH / c.H) {
    if (kind != Kind::leaky) return;
    leak = c.p.at(c.cfg.learned_leak ? "leak_logit" : "leak");
    const T* v = ptr<T>(leak);
    for (int64_t j = 0; j < H; ++j) {
      const T x = v[leak.numel() == 1 ? 0 : j];
      a.push_back(c.cfg.learned_leak ? T(1) / (T(1) + std::exp(-x)) : x);
    }
    if (c.cfg.learned_leak) da.init(B, H, c.opts);
  }

  void forward(int64_t t, T* z, T* const* prev, T* const* next) {
    hh.forward(t, prev[0], z, GH, true);
    rows(B, GH, [&](int64_t b) {
      T *__restrict__ zr = z + b * GH, *__restrict__ h1 = next[0] + b * H;
      const T *__restrict__ h0 = prev[0] + b * H, *__restrict__ ap = a.data();
      if (kind == Kind::rnn) {
        for (int64_t j = 0; j < H; ++j) h1[j] = act<T, phi>(zr[j]);
      } else if (kind == Kind::leaky) {
        for (int64_t j = 0; j < H; ++j) {
          const T v = act<T, phi>(zr[j]);
          zr[j] = v;
          h1[j] = lerp(v, h0[j], ap[j]);
        }
      } else if (!gated) {
        for (int64_t j = 0; j < H; ++j) zr[j] = act<T, phi>(zr[j]), h1[j] = h0[j] + zr[j];
      } else {
        for (int64_t j = 0; j < H; ++j) {
          const T i = sigm(zr[j]), r = act<T, phi>(zr[H + j]);
          zr[j] = i, zr[H + j] = r;
          h1[j] = h0[j] + i * r;
        }
      }
    });
  }

  void backward(int64_t t, T* z, T* const* prev, T* const* next, T* const* dn, T* const* dp) {
    rows(B, GH, [&](int64_t b) {
      T *__restrict__ zr = z + b * GH, *__restrict__ q = dp[0] + b * H;
      const T *__restrict__ g = dn[0] + b * H, *__restrict__ h0 = prev[0] + b * H,
              *__restrict__ h1 = next[0] + b * H, *__restrict__ ap = a.data();
      if (kind == Kind::rnn) {
        for (int64_t j = 0; j < H; ++j) zr[j] = act_grad<T, phi>(h1[j], g[j]);
      } else if (kind == Kind::leaky) {
        T* __restrict__ dar = da.row(b);
        if (dar) for (int64_t j = 0; j < H; ++j) dar[j] += g[j] * (h0[j] - zr[j]);
        for (int64_t j = 0; j < H; ++j) zr[j] = act_grad<T, phi>(zr[j], g[j]) * (T(1) - ap[j]), q[j] = g[j] * ap[j];
      } else if (!gated) {
        for (int64_t j = 0; j < H; ++j) zr[j] = act_grad<T, phi>(zr[j], g[j]), q[j] = g[j];
      } else {
        for (int64_t j = 0; j < H; ++j) {
          const T i = zr[j], r = zr[H + j];
          zr[H + j] = act_grad<T, phi>(r, g[j] * i);
          zr[j] = g[j] * r * (i - i * i);
          q[j] = g[j];
        }
      }
    });
    hh.backward(t, z, GH, dp[0], kind != Kind::rnn);
  }

  void entries(std::vector<Entry>& e, const Tensor& dbz) const {
    hh.entries(e, c, dbz);
    if (!da.buf.defined()) return;
    const Tensor av = at::tensor(at::ArrayRef<T>(a), c.opts);
    const Tensor g = da.buf.sum(0) * av * (1 - av);  // dL/d(leak_logit), per unit
    e.emplace_back("leak_logit", leak.numel() == 1 ? g.sum().reshape(leak.sizes()) : g, c10::nullopt);
  }
};

template <typename T, int phi>
struct Deep {
  static constexpr int states = 1;
  Ctx<T>& c;
  const int64_t B, H, L;
  const bool skip;
  Product<T> hh;
  std::vector<Tensor> us;          // u_1 .. u_L (skip) or u_1 .. u_{L-1} (u_L is h_t), (T, B, H)
  std::vector<Product<T>> layers;  // W_j, b_j, j = 2..L
  Tensor du;

  explicit Deep(Ctx<T>& c_)
      : c(c_), B(c.B), H(c.H), L(c.cfg.depth), skip(c.cfg.skip),
        hh(c, "weight_hh", 0, H, c.prev(0), 0, true, "bias_hh", "ln_gain_hh") {
    for (int64_t j = 1; j <= (skip ? L : L - 1); ++j) us.push_back(c.seq(H));
    for (int64_t j = 2; j <= L; ++j) {
      const std::string k = std::to_string(j);
      layers.emplace_back(c, "weight_t" + k, 0, H, us[j - 2], -1, false, "bias_t" + k);
    }
    du = c.block(H);
  }
  T* u(int64_t j, int64_t t, T* const* next) const {
    return j <= static_cast<int64_t>(us.size()) ? at_step<T>(us[j - 1], t) : next[0];
  }

  void forward(int64_t t, T* z, T* const* prev, T* const* next) {
    hh.forward(t, prev[0], z, H, true);
    T* u1 = u(1, t, next);
    for (int64_t k = 0; k < B * H; ++k) u1[k] = act<T, phi>(z[k]);
    for (int64_t j = 2; j <= L; ++j) {
      T* uj = u(j, t, next);
      layers[j - 2].forward(t, u(j - 1, t, next), uj, H, false);
      for (int64_t k = 0; k < B * H; ++k) uj[k] = act<T, phi>(uj[k]);
    }
    const T* uL = u(L, t, next);
    if (skip) for (int64_t k = 0; k < B * H; ++k) next[0][k] = uL[k] + prev[0][k];
  }

  void backward(int64_t t, T* z, T* const*, T* const* next, T* const* dn, T* const* dp) {
    const T* g = dn[0];  // dL/du_j, from j = L down
    for (int64_t j = L; j >= 2; --j) {
      T *dz = layers[j - 2].dout_at(t), *uj = u(j, t, next);
      for (int64_t k = 0; k < B * H; ++k) dz[k] = act_grad<T, phi>(uj[k], g[k]);
      layers[j - 2].backward(t, dz, H, ptr<T>(du), false);
      g = ptr<T>(du);
    }
    const T* u1 = u(1, t, next);
    for (int64_t k = 0; k < B * H; ++k) z[k] = act_grad<T, phi>(u1[k], g[k]);
    if (skip) std::memcpy(dp[0], dn[0], B * H * sizeof(T));
    hh.backward(t, z, H, dp[0], skip);
  }

  void entries(std::vector<Entry>& e, const Tensor& dbz) const {
    hh.entries(e, c, dbz);
    for (const auto& p : layers) p.entries(e, c, dbz);
  }
};

template <typename T, int act_s>
struct Output {
  static constexpr int states = 2;
  Ctx<T>& c;
  const int64_t B, H, O;
  const Act g;
  std::vector<Product<T>> hh;  // V s~_{t-1} (output feedback only)
  Product<T> yh, hy;           // W y_{t-1} (y~ for the output-recurrent cell), W_hy s_t + b_y
  Tensor ds;

  explicit Output(Ctx<T>& c_)
      : c(c_), B(c.B), H(c.H), O(c.st[1].size(2)), g(c.cfg.output_activation),
        yh(c, "weight_yh", 0, H, c.prev(1), 0, c.cfg.kind == Kind::output_recurrent),
        hy(c, "weight_hy", 0, O, c.next(0), -1, false, "bias_hy") {
    if (c.cfg.kind == Kind::output_feedback) hh.emplace_back(c, "weight_hh", 0, H, c.prev(0), 0, true, "bias_hh");
    ds = c.block(H);
  }

  void forward(int64_t t, T* z, T* const* prev, T* const* next) {
    for (auto& p : hh) p.forward(t, prev[0], z, H, true);
    yh.forward(t, prev[1], z, H, true);
    for (int64_t k = 0; k < B * H; ++k) next[0][k] = act<T, act_s>(z[k]);
    hy.forward(t, next[0], next[1], O, false);
    with_act<true>(g, [&](auto k) {
      for (int64_t j = 0; j < B * O; ++j) next[1][j] = act<T, decltype(k)::value>(next[1][j]);
    });
  }

  void backward(int64_t t, T* z, T* const*, T* const* next, T* const* dn, T* const* dp) {
    T *dzy = hy.dout_at(t), *d = ptr<T>(ds);
    with_act<true>(g, [&](auto k) {
      for (int64_t j = 0; j < B * O; ++j) dzy[j] = act_grad<T, decltype(k)::value>(next[1][j], dn[1][j]);
    });
    std::memcpy(d, dn[0], B * H * sizeof(T));
    hy.backward(t, dzy, O, d, true);  // ds_t + dzy W_hy
    for (int64_t k = 0; k < B * H; ++k) z[k] = act_grad<T, act_s>(next[0][k], d[k]);
    if (hh.empty()) std::memset(dp[0], 0, B * H * sizeof(T));
    for (auto& p : hh) p.backward(t, z, H, dp[0], false);
    yh.backward(t, z, H, dp[1], false);
  }

  void entries(std::vector<Entry>& e, const Tensor& dbz) const {
    for (const auto& p : hh) p.entries(e, c, dbz);
    yh.entries(e, c, dbz);
    hy.entries(e, c, dbz);
  }
};

}  // namespace

template <typename T> std::shared_ptr<Run> make_simple(Ctx<T>&& c) {
  std::shared_ptr<Run> run;
  with_act(c.cfg.nonlinearity, [&](auto k) {
    constexpr int phi = decltype(k)::value;
    if (c.cfg.kind == Kind::rnn) run = std::make_shared<Loop<T, Simple<T, phi, Kind::rnn>>>(std::move(c));
    else if (c.cfg.kind == Kind::leaky) run = std::make_shared<Loop<T, Simple<T, phi, Kind::leaky>>>(std::move(c));
    else run = std::make_shared<Loop<T, Simple<T, phi, Kind::residual>>>(std::move(c));
  });
  return run;
}
template <typename T> std::shared_ptr<Run> make_deep(Ctx<T>&& c) {
  std::shared_ptr<Run> run;
  with_act(c.cfg.nonlinearity, [&](auto k) { run = std::make_shared<Loop<T, Deep<T, decltype(k)::value>>>(std::move(c)); });
  return run;
}
template <typename T> std::shared_ptr<Run> make_output(Ctx<T>&& c) {
  std::shared_ptr<Run> run;
  with_act(c.cfg.nonlinearity, [&](auto k) { run = std::make_shared<Loop<T, Output<T, decltype(k)::value>>>(std::move(c)); });
  return run;
}
#define RNNLAB_INSTANTIATE(T)                              \
  template std::shared_ptr<Run> make_simple<T>(Ctx<T>&&); \
  template std::shared_ptr<Run> make_deep<T>(Ctx<T>&&);   \
  template std::shared_ptr<Run> make_output<T>(Ctx<T>&&);
RNNLAB_INSTANTIATE(float)
RNNLAB_INSTANTIATE(double)

}  // namespace rnnlab_compiled
