// The compiled engine's one driver: the typed configuration, the per-step matrix products and
// the forward and backward time loops every cell runs in (the cells, each a row kernel and its
// derivative, are in cells.h).
//
// Layout. xw (T, B, G*H) holds the input projection W_ih x_t; the forward makes each step's slice
// the pre-activations z_t (the input part, the biases, the recurrent products) and then the
// cell's saved gate activations; the backward overwrites them with dL/dz_t and then dL/dxw_t.
// states[k] (T+1, B, S_k) holds state k before the first step (row 0) and after every step.
// mask (T, B) bool marks real steps: at a padded step the state is carried, the cell sees no
// gradient and dL/dstate_{t-1} = dL/dstate_t. Zoneout instead gives keep weights k (T, B, S_k)
// per state (lengths folded in): state_t = lerp(state_{t-1}, state~_t, k), the cell's own
// state~_t kept apart (its backward and weight gradients read it), the cell seeing k dL/dstate_t
// and dL/dstate_{t-1} getting (1 - k) dL/dstate_t besides.
//
// The input side (the driver's): z_t = xw_t + b, or under layer normalisation
// z_t = g_ih LN(xw_t) + b, b = b_ih plus the biases of the products that add into z_t. Every
// matrix product a cell makes per step is a Product: out (+)= LN?(m * in W^T) + bias, with its
// derivative and the sequences its weight's gradient sum_t dout_t^T in_t needs (compiled.py
// forms those products, all steps at once, from the backward's Entry list).
#pragma once

#include "common.h"

#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

namespace rnnlab_compiled {

enum class Kind { lstm, gru, rnn, leaky, residual, deep_transition, output_feedback, output_recurrent };
enum class Act { tanh, relu, sigmoid, identity };
enum class Peephole { none, diagonal, full };

// Which cell and options to run; built by compiled.py from the cell (one function per cell
// class), checked by check(). Options of other kinds keep their defaults.
struct Config {
  Kind kind = Kind::rnn;
  bool bias = true, layer_norm = false;
  Act nonlinearity = Act::tanh;        // rnn, leaky, residual, deep_transition, output cells
  bool forget_gate = true;             // lstm
  Peephole peephole = Peephole::none;  // lstm
  bool peephole_candidate = false;     // lstm: z_g += w_cc C_{t-1} (needs a peephole)
  bool reset_after = true;             // gru
  bool learned_leak = false;           // leaky
  bool gated = false;                  // residual
  int64_t depth = 1;                   // deep_transition
  bool skip = false;                   // deep_transition
  Act output_activation = Act::identity;  // output cells

  int64_t gates() const {
    switch (kind) {
      case Kind::lstm: return forget_gate ? 4 : 3;
      case Kind::gru: return 3;
      case Kind::residual: return gated ? 2 : 1;
      default: return 1;
    }
  }
  int64_t states() const { return kind == Kind::lstm || kind >= Kind::output_feedback ? 2 : 1; }
  void check() const;                          // a bad combination: a ValueError saying which
  std::vector<std::string> parameters() const;  // the names of the tensors a run reads
  std::string repr() const;
};

using Params = std::map<std::string, Tensor>;
// One gradient: (name, d, None) is dL/d(name) itself; (name, d, a) is sum_t d_t^T a_t, a
// product compiled.py forms over all steps. Entries of one name are row blocks, in order.
using Entry = std::tuple<std::string, Tensor, c10::optional<Tensor>>;

// sum over steps and batch rows of a (B, N) term: one row of partial sums per batch row (a row
// belongs to one thread), summed over the rows at the end
template <typename T> struct Acc {
  Tensor buf;
  void init(int64_t B, int64_t N, const at::TensorOptions& o) { buf = at::zeros({B, N}, o); }
  T* row(int64_t b) const { return buf.data_ptr<T>() + b * buf.size(1); }
  Tensor sum() const { return buf.sum(0); }
};

// what every step of one call shares
template <typename T> struct Ctx {
  Config cfg;
  Params p;
  int64_t Tn, B, H, GH;
  Tensor xw;                           // (T, B, G*H)
  std::vector<Tensor> st, own, keep;   // states (T+1, B, S_k); zoneout: state~ (T, B, S_k), k
  const bool* mask = nullptr;          // (T, B) or null
  Tensor mask_t, rmask;                // the lengths mask; recurrent dropout m (B, R) or undefined
  std::vector<T> bz;                   // b: the biases added to z_t (empty without biases)
  at::TensorOptions opts;

  const Tensor& w(const std::string& name) const {
    auto it = p.find(name);
    TORCH_CHECK_VALUE(it != p.end(), "rnnlab compiled: ", cfg.repr(), " needs the tensor ", name);
    return it->second;
  }
  const T* wp(const std::string& name) const { return name.empty() ? nullptr : ptr<T>(w(name)); }
  T* z(int64_t t) const { return at_step<T>(xw, t); }
  Tensor prev(int k) const { return st[k].narrow(0, 0, Tn); }  // state_{t-1} of every step
  Tensor next(int k) const { return own.empty() ? st[k].narrow(0, 1, Tn) : own[k]; }  // state~_t
  Tensor seq(int64_t S) const { return at::empty({Tn, B, S}, opts); }
  Tensor block(int64_t S) const { return at::empty({B, S}, opts); }
};

// out (B, N) (+)= LN?(m * in W^T) + bias, W rows [row0, row0 + N) of a weight (., K): one per-step
// matrix product of a cell. m: the recurrent-dropout mask on the input; LN: normalised over each
// of ``blocks`` blocks of H units, then scaled by the gain. An output into z_t's columns
// [zcol, zcol + N) has its bias added (and its gradient summed) with z_t's by the driver.
template <typename T> struct Product {
  std::string weight, bias, gain;
  int64_t row0, N, K, B, zcol, blocks;
  bool own_in, own_d;
  rnnlab_blas::Op<T> fw, bw;  // W^T (the forward's operand) and W (the backward's)
  Tensor wT, in, u, inv, d, tmp;  // in~ (T, B, K); LN's y then du (T, B, N) and 1/s; dout; scratch
  const T *m = nullptr, *b = nullptr, *g = nullptr;
  Acc<T> db, dg;

  // ``in_seq``: the input sequence when it is a state (else it is kept here, m applied)
  Product(Ctx<T>& c, std::string weight_, int64_t row0_, int64_t N_, const Tensor& in_seq,
          int64_t zcol_, bool masked, std::string bias_ = "", std::string gain_ = "", int64_t blocks_ = 1)
      : weight(weight_), bias(c.cfg.bias ? bias_ : ""), gain(c.cfg.layer_norm ? gain_ : ""),
        row0(row0_), N(N_), B(c.B), zcol(zcol_), blocks(blocks_) {
    const Tensor W = c.w(weight).narrow(0, row0, N);
    K = W.size(1);
    fw = transposed<T>(W, c.Tn, wT);
    bw = rnnlab_blas::op<T>(W);
    if (masked && c.rmask.defined()) m = ptr<T>(c.rmask);
    own_in = !in_seq.defined() || m;
    in = own_in ? c.seq(K) : in_seq;
    own_d = gain.empty() && (zcol < 0 || c.cfg.layer_norm);  // (LN: z_t's rows become dL/dxw_t)
    if (own_d) d = c.seq(N);
    tmp = c.block(std::max(N, K));
    if (!bias.empty()) {
      b = ptr<T>(c.w(bias)) + row0;
      if (zcol >= 0) for (int64_t j = 0; j < N; ++j) c.bz[zcol + j] += b[j];
      else db.init(B, N, c.opts);
    }
    if (!gain.empty()) {
      g = ptr<T>(c.w(gain)) + row0;
      u = c.seq(N);
      inv = at::empty({c.Tn, B, blocks}, c.opts);
      dg.init(B, N, c.opts);
    }
  }
  T* in_at(int64_t t) const { return at_step<T>(in, t); }
  // where a cell may write dL/dout of step t (no copy is made of it then)
  T* dout_at(int64_t t) const { return own_d ? at_step<T>(d, t) : ptr<T>(tmp); }

  void forward(int64_t t, const T* x, T* out, int64_t ldo, bool acc) {
    if (own_in) {  // in~ = m * in, kept for the weight's gradient
      T* s = in_at(t);
      if (m) for (int64_t k = 0; k < B * K; ++k) s[k] = m[k] * x[k];
      else if (s != x) std::memcpy(s, x, B * K * sizeof(T));
      x = s;
    }
    const bool add_b = b && zcol < 0;
    if (!g) {
      rnnlab_blas::mm<T>(out, ldo, x, K, fw, B, T(acc ? 1 : 0));
      if (add_b) rows(B, N, [&](int64_t r) {
        T* __restrict__ o = out + r * ldo;
        for (int64_t j = 0; j < N; ++j) o[j] += b[j];
      });
      return;
    }
    T *y = at_step<T>(u, t), *iv = at_step<T>(inv, t);
    rnnlab_blas::mm<T>(y, N, x, K, fw, B, T(0));
    rows(B, N, [&](int64_t r) {
      T *yr = y + r * N, *o = out + r * ldo;
      normalize(yr, yr, iv + r * blocks, blocks, N / blocks);
      for (int64_t j = 0; j < N; ++j) o[j] = (acc ? o[j] : T(0)) + g[j] * yr[j] + (add_b ? b[j] : T(0));
    });
  }

  // din (B, K) (+)= m * (dout W), dout = dL/d(out) (B, N) with row stride ld
  void backward(int64_t t, const T* dout, int64_t ld, T* din, bool acc) {
    const bool sum_b = b && zcol < 0;
    if (g) {  // dL/dg += dout y; dout becomes du = LN'(g dout), over y
      T *y = at_step<T>(u, t), *iv = at_step<T>(inv, t);
      rows(B, N, [&](int64_t r) {
        const T* e = dout + r * ld;
        T *yr = y + r * N, *gr = dg.row(r), *br = sum_b ? db.row(r) : nullptr;
        for (int64_t j = 0; j < N; ++j) gr[j] += e[j] * yr[j];
        if (br) for (int64_t j = 0; j < N; ++j) br[j] += e[j];
        normalize_backward(e, g, yr, iv + r * blocks, yr, blocks, N / blocks);
      });
      dout = y;
      ld = N;
    } else if (own_d || sum_b) {
      T* dt = own_d ? at_step<T>(d, t) : nullptr;
      rows(B, N, [&](int64_t r) {
        const T* e = dout + r * ld;
        if (sum_b) {
          T* __restrict__ br = db.row(r);
          for (int64_t j = 0; j < N; ++j) br[j] += e[j];
        }
        if (dt && e != dt + r * N) std::memcpy(dt + r * N, e, N * sizeof(T));
      });
      if (own_d) dout = dt, ld = N;
    }
    if (!m) return rnnlab_blas::mm<T>(din, K, dout, ld, bw, B, T(acc ? 1 : 0));
    T* q = ptr<T>(tmp);
    rnnlab_blas::mm<T>(q, K, dout, ld, bw, B, T(0));
    for (int64_t k = 0; k < B * K; ++k) din[k] = (acc ? din[k] : T(0)) + m[k] * q[k];
  }

  // the weight's gradient as a product over all steps, the bias's and the gain's as sums
  void entries(std::vector<Entry>& e, const Ctx<T>& c, const Tensor& dbz) const {
    const Tensor dseq = g ? u : own_d ? d : c.xw.narrow(2, zcol, N);
    e.emplace_back(weight, dseq, in);
    if (b) e.emplace_back(bias, zcol >= 0 ? dbz.narrow(0, zcol, N) : db.sum(), c10::nullopt);
    if (g) e.emplace_back(gain, dg.sum(), c10::nullopt);
  }
};

// the calls a Python caller makes: the forward loop, then (with gradients) the backward loop
struct Run {
  virtual ~Run() = default;
  virtual std::vector<Tensor> forward() = 0;  // the states (T+1, B, S_k)
  // d_seqs[k]: dL/d(states[k][1:]) or None. Returns dL/dxw (T, B, G*H), dL/dstate_0, entries
  virtual std::tuple<Tensor, std::vector<Tensor>, std::vector<Entry>> backward(
      std::vector<c10::optional<Tensor>> d_seqs) = 0;
};

// The time loops of one cell type. A Cell has states (1 or 2), a constructor from the Ctx, and
//   forward(t, z, prev, next): from z_t (its input part and biases in) and state_{t-1}, state~_t
//   backward(t, z, prev, next, dn, dp): from the saved gates in z_t and dn = dL/dstate~_t, dL/dz_t
//     over z_t and the cell's dL/dstate_{t-1} into dp (written, not added to)
//   entries(e, dbz): its gradients
template <typename T, typename Cell> struct Loop final : Run {
  Ctx<T> c;
  Cell cell;
  Tensor y_ih, inv_ih;  // layer normalisation of the input side: y (T, B, G*H), 1/s (T, B, G)
  const T *b = nullptr, *g_ih = nullptr;

  explicit Loop(Ctx<T>&& ctx) : c(std::move(ctx)), cell(c) {
    if (c.cfg.bias) b = c.bz.data();
    if (c.cfg.layer_norm) {
      y_ih = c.seq(c.GH);
      inv_ih = at::empty({c.Tn, c.B, c.cfg.gates()}, c.opts);
      g_ih = ptr<T>(c.w("ln_gain_ih"));
    }
  }

  std::vector<Tensor> forward() override {
    at::NoGradGuard no_grad;
    const int64_t B = c.B, GH = c.GH, G = c.cfg.gates();
    T *prev[2] = {}, *next[2] = {};
    for (int64_t t = 0; t < c.Tn; ++t) {
      T* z = c.z(t);
      if (g_ih) {  // z_t = g_ih LN(xw_t) + b
        T *y = at_step<T>(y_ih, t), *iv = at_step<T>(inv_ih, t);
        rows(B, GH, [&](int64_t r) {
          T *zr = z + r * GH, *yr = y + r * GH;
          normalize(zr, yr, iv + r * G, G, c.H);
          for (int64_t j = 0; j < GH; ++j) zr[j] = g_ih[j] * yr[j] + (b ? b[j] : T(0));
        });
      } else if (b) {
        rows(B, GH, [&](int64_t r) {
          T* __restrict__ zr = z + r * GH;
          for (int64_t j = 0; j < GH; ++j) zr[j] += b[j];
        });
      }
      for (int k = 0; k < Cell::states; ++k) {
        prev[k] = at_step<T>(c.st[k], t);
        next[k] = c.own.empty() ? at_step<T>(c.st[k], t + 1) : at_step<T>(c.own[k], t);
      }
      cell.forward(t, z, prev, next);
      for (int k = 0; k < Cell::states; ++k) {  // zoneout's blend, or the carry at padded steps
        const int64_t S = c.st[k].size(2);
        T* s1 = at_step<T>(c.st[k], t + 1);
        if (!c.keep.empty()) {
          const T* kt = at_step<T>(c.keep[k], t);
          for (int64_t j = 0; j < B * S; ++j) s1[j] = lerp(prev[k][j], next[k][j], kt[j]);
        } else if (c.mask) {
          for (int64_t r = 0; r < B; ++r)
            if (!c.mask[t * B + r]) std::memcpy(s1 + r * S, prev[k] + r * S, S * sizeof(T));
        }
      }
    }
    return c.st;
  }

  std::tuple<Tensor, std::vector<Tensor>, std::vector<Entry>> backward(
      std::vector<c10::optional<Tensor>> d_seqs) override {
    at::NoGradGuard no_grad;
    const int64_t B = c.B, GH = c.GH, G = c.cfg.gates(), n = Cell::states;
    const bool gated = c.mask || !c.keep.empty();  // the cell sees k dL/dstate_t
    std::vector<Tensor> d, dp, dn;
    for (int k = 0; k < n; ++k) {
      d.push_back(at::zeros({B, c.st[k].size(2)}, c.opts));
      dp.push_back(at::empty_like(d[k]));
      if (gated) dn.push_back(at::empty_like(d[k]));
    }
    Acc<T> db, dg;
    if (b) db.init(B, GH, c.opts);
    if (g_ih) dg.init(B, GH, c.opts);
    T *prev[2] = {}, *next[2] = {}, *dnp[2] = {}, *dpp[2] = {};
    for (int64_t t = c.Tn - 1; t >= 0; --t) {
      for (int k = 0; k < n; ++k) {
        const int64_t S = d[k].size(1);
        if (d_seqs[k].has_value()) add_seq<T>(ptr<T>(d[k]), *d_seqs[k], t);
        prev[k] = at_step<T>(c.st[k], t);
        next[k] = c.own.empty() ? at_step<T>(c.st[k], t + 1) : at_step<T>(c.own[k], t);
        dpp[k] = ptr<T>(dp[k]);
        dnp[k] = ptr<T>(gated ? dn[k] : d[k]);
        const T* dk = ptr<T>(d[k]);
        if (!c.keep.empty()) {
          const T* kt = at_step<T>(c.keep[k], t);
          for (int64_t j = 0; j < B * S; ++j) dnp[k][j] = kt[j] * dk[j];
        } else if (c.mask) {
          for (int64_t r = 0; r < B; ++r) {
            if (c.mask[t * B + r]) std::memcpy(dnp[k] + r * S, dk + r * S, S * sizeof(T));
            else std::memset(dnp[k] + r * S, 0, S * sizeof(T));
          }
        }
      }
      T* z = c.z(t);
      cell.backward(t, z, prev, next, dnp, dpp);
      if (b || g_ih) {  // dL/db += dz_t; dL/dg_ih += dz_t y; dL/dxw_t = LN'(g_ih dz_t)
        const T* y = g_ih ? at_step<T>(y_ih, t) : nullptr;
        const T* iv = g_ih ? at_step<T>(inv_ih, t) : nullptr;
        rows(B, GH, [&](int64_t r) {
          T* zr = z + r * GH;
          if (b) {
            T* __restrict__ br = db.row(r);
            for (int64_t j = 0; j < GH; ++j) br[j] += zr[j];
          }
          if (!g_ih) return;
          T* __restrict__ gr = dg.row(r);
          const T* yr = y + r * GH;
          for (int64_t j = 0; j < GH; ++j) gr[j] += zr[j] * yr[j];
          normalize_backward(zr, g_ih, yr, iv + r * G, zr, G, c.H);
        });
      }
      for (int k = 0; k < n; ++k) {  // the carried part: dL/dstate_{t-1} += (1 - k) dL/dstate_t
        const int64_t S = d[k].size(1);
        const T* dk = ptr<T>(d[k]);
        if (!c.keep.empty()) {
          const T* kt = at_step<T>(c.keep[k], t);
          for (int64_t j = 0; j < B * S; ++j) dpp[k][j] += (T(1) - kt[j]) * dk[j];
        } else if (c.mask) {
          for (int64_t r = 0; r < B; ++r)
            if (!c.mask[t * B + r]) for (int64_t j = r * S; j < (r + 1) * S; ++j) dpp[k][j] += dk[j];
        }
        std::swap(d[k], dp[k]);
      }
    }
    std::vector<Entry> e;
    const Tensor dbz = b ? db.sum() : Tensor();
    if (b) e.emplace_back("bias_ih", dbz, c10::nullopt);
    if (g_ih) e.emplace_back("ln_gain_ih", dg.sum(), c10::nullopt);
    cell.entries(e, dbz);
    return {c.xw, d, e};
  }
};

// f(std::integral_constant<int, k>()) for the activation code k: a run-time option made a
// template argument (identity only where it is allowed: the output activation)
template <bool identity = false, typename F> inline void with_act(Act a, const F& f) {
  switch (a) {
    case Act::tanh: return f(std::integral_constant<int, 0>());
    case Act::relu: return f(std::integral_constant<int, 1>());
    case Act::identity: if (identity) return f(std::integral_constant<int, 3>());  // fallthrough
    default: return f(std::integral_constant<int, 2>());
  }
}

// the cells' loops (one factory per family, in lstm.cpp, gru.cpp, rnn.cpp): Ctx moves into the Loop
template <typename T> std::shared_ptr<Run> make_lstm(Ctx<T>&& c);
template <typename T> std::shared_ptr<Run> make_gru(Ctx<T>&& c);
template <typename T> std::shared_ptr<Run> make_simple(Ctx<T>&& c);  // rnn, leaky, residual
template <typename T> std::shared_ptr<Run> make_deep(Ctx<T>&& c);    // deep_transition
template <typename T> std::shared_ptr<Run> make_output(Ctx<T>&& c);  // output cells

}  // namespace rnnlab_compiled
