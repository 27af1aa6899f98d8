// The compiled engine's one driver: the typed configuration, the per-step matrix products and
// the forward and backward time loops of every cell (each cell a row kernel and its derivative:
// lstm.cpp, gru.cpp, rnn.cpp).
//
// xw (T, B, G*H) holds W_ih x_t; the forward makes step t's slice z_t (+ b, the products that add
// into it; layer norm: g_ih LN(xw_t) + b), then the cell's saved gates; the backward dL/dz_t, then
// dL/dxw_t. states[k] (T+1, B, S_k): row 0 the initial state. Lengths: mask (T, B), a padded
// step carries the state and sends its gradient straight back. Zoneout: keep weights k (T, B, S_k)
// per state, state_t = lerp(state_{t-1}, state~_t, k), the cell's own state~_t kept apart; the
// cell sees k dL/dstate_t, dL/dstate_{t-1} gets (1 - k) dL/dstate_t besides.
#pragma once

#include "common.h"
#include "onednn.h"
#include "panels.h"
#include "pool.h"

#include <array>
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

// Which cell and options to run: built by compiled.py (one function per cell class), checked by
// check(). Options of other kinds keep their defaults.
struct Config {
  Kind kind = Kind::rnn;
  bool bias = true, layer_norm = false;
  Act nonlinearity = Act::tanh;           // rnn, leaky, residual, deep_transition, output cells
  bool forget_gate = true;                // lstm
  Peephole peephole = Peephole::none;     // lstm
  bool peephole_candidate = false;        // lstm: z_g += w_cc C_{t-1}
  bool reset_after = true;                // gru
  bool learned_leak = false;              // leaky
  bool gated = false;                     // residual
  int64_t depth = 1;                      // deep_transition
  bool skip = false;                      // deep_transition
  Act output_activation = Act::identity;  // output cells

  int64_t gates() const {
    return kind == Kind::lstm ? (forget_gate ? 4 : 3) : kind == Kind::gru ? 3 : kind == Kind::residual && gated ? 2 : 1;
  }
  int64_t states() const { return kind == Kind::lstm || kind >= Kind::output_feedback ? 2 : 1; }
  void check() const;                           // a bad combination: a ValueError saying which
  std::vector<std::string> parameters() const;  // the names of the tensors a run reads
};

using Params = std::map<std::string, Tensor>;
// a gradient: (name, d, None) is dL/d(name); (name, d, a) is sum_t d_t^T a_t, a product
// compiled.py forms over all steps. Entries of one name are its row blocks, in order.
using Entry = std::tuple<std::string, Tensor, c10::optional<Tensor>>;

// a sum over steps and batch rows: a row of partial sums per batch row (each row is one
// thread's), summed over the rows at the end
template <typename T> struct Acc {
  Tensor buf;
  void init(int64_t B, int64_t N, const at::TensorOptions& o) { buf = at::zeros({B, N}, o); }
  T* row(int64_t b) const { return buf.defined() ? buf.data_ptr<T>() + b * buf.size(1) : nullptr; }
};

// what every step of one call shares
template <typename T> struct Ctx {
  Config cfg;
  Params p;
  int64_t Tn, B, H, GH;
  Tensor xw, mask_t, rmask;            // rmask: the recurrent-dropout mask m (B, R), or undefined
  std::vector<Tensor> st, own, keep;   // zoneout: the cell's state~ (T, B, S_k) and k
  const bool* mask = nullptr;          // the lengths mask (T, B), or null
  bool onednn = false;                 // the per-step products may take oneDNN (onednn.h)
  std::vector<T> bz;                   // the biases added to z_t (empty without biases)
  at::TensorOptions opts;
  // every sequence of the run (seq), in the order made: what the backward reads of the forward;
  // ``given``: a run rebuilt for its backward (a custom op's) takes these back, in that order
  std::vector<Tensor> saved, given;

  const T* w(const std::string& name) const { return p.at(name).template data_ptr<T>(); }
  Tensor prev(int k) const { return st[k].narrow(0, 0, Tn); }  // state_{t-1} of every step
  Tensor next(int k) const { return own.empty() ? st[k].narrow(0, 1, Tn) : own[k]; }  // state~_t
  // a sequence (steps, B, S), steps T unless given: made, or the next one handed back
  Tensor seq(int64_t S, int64_t steps = -1) {
    const std::array<int64_t, 3> dims = {steps < 0 ? Tn : steps, B, S};
    const at::IntArrayRef shape(dims);
    if (given.empty()) return saved.emplace_back(rnnlab_pool::empty(shape, opts));
    const size_t k = saved.size();
    TORCH_CHECK_VALUE(k < given.size() && given[k].sizes() == shape && given[k].is_contiguous() &&
                      given[k].scalar_type() == opts.dtype(), "rnnlab compiled: saved tensor ", k,
                      " does not fit this run");
    return saved.emplace_back(given[k]);
  }
  Tensor block(int64_t S) const { return at::empty({B, S}, opts); }
};

// whether the products x V^T of B rows over ``steps`` steps, V (N, K) (a weight W, or W^T for
// the backward's d W), take the packed kernel (panels.h): float32, faster than the BLAS and than
// oneDNN where that may run; in deterministic mode wherever it runs, by no timing (each of its
// sums runs in one fixed order, whatever the threads: a seeded run repeats bit for bit)
template <typename T> bool packs(int64_t B, int64_t steps, bool onednn, const Tensor& V) {
  if (!std::is_same<T, float>::value || steps < 8) return false;
  if (at::globalContext().deterministicAlgorithms()) return rnnlab_panels::runs(B);
  const bool dnnl = onednn && rnnlab_onednn::policy() != 2 && B > 2;
  if (dnnl && rnnlab_onednn::policy() == 1) return false;  // (oneDNN forced: set_onednn("always"))
  return rnnlab_panels::chosen(B, V.size(0), V.size(1), dnnl ? rnnlab_onednn::timings(V, B)[1] : 1e30);
}
// out (M, .), rows ldo apart, (+)= x (M, .), rows ldx apart, times the operand (packed if it is)
template <typename T>
void mul(T* out, int64_t ldo, const T* x, int64_t ldx, const rnnlab_blas::Op<T>& op,
         const rnnlab_panels::Packed& packed, int64_t M, bool acc) {
  if constexpr (std::is_same<T, float>::value) {
    if (packed.defined()) return rnnlab_panels::mm(out, ldo, x, ldx, packed, M, acc);
  }
  rnnlab_blas::mm<T>(out, ldo, x, ldx, op, M, T(acc ? 1 : 0));
}

// One per-step matrix product of a cell: out (B, N) (+)= LN?(in~ W^T) + bias, W the rows
// [row0, row0 + N) of a weight (., K), in~ = m * in under recurrent dropout, LN over each of
// ``blocks`` blocks of H units times the gain. An output into z_t's columns [zcol, zcol + N) has
// its bias added and summed with z_t's (the driver's). Keeps the sequences its weight's gradient
// sum_t dout_t^T in~_t reads: in~ unless it is a state, dout unless it is dL/dz_t's columns.
template <typename T> struct Product {
  std::string weight, bias, gain;
  int64_t N, K, B, zcol, blocks;
  bool own_in, own_d;
  rnnlab_blas::Op<T> fw, bw;        // W^T (the forward's operand), W (the backward's)
  rnnlab_panels::Packed pf, pb;     // the same packed (panels.h), where that kernel is faster
  int64_t steps;
  bool onednn, pb_open = true;      // oneDNN allowed; the backward's choice still to make
  Tensor wv, wT, in, u, inv, d, tmp;  // W's rows; W^T; in~; LN's y, then du (T, B, N), 1/s (T, B, blocks); dout
  Route<T> route;                   // oneDNN's, where faster (onednn.h)
  const T* yo = nullptr;            // this step's in~ W^T on it
  const T *m = nullptr, *b = nullptr, *g = nullptr;
  Acc<T> db, dg;

  Product(Ctx<T>& c, std::string w, int64_t row0, int64_t N_, const Tensor& in_seq, int64_t zcol_,
          bool masked, std::string b_ = "", std::string g_ = "", int64_t blocks_ = 1)
      : weight(w), bias(c.cfg.bias ? b_ : ""), gain(c.cfg.layer_norm ? g_ : ""), N(N_), B(c.B),
        zcol(zcol_), blocks(blocks_) {
    const Tensor W = wv = c.p.at(weight).narrow(0, row0, N);
    K = W.size(1);
    steps = c.Tn, onednn = c.onednn;
    if (c.given.empty() && packs(W)) pf.pack(rnnlab_blas::op_t<T>(W));
    // (a backward's run, or a packed kernel's: unused)
    fw = c.given.empty() && !pf.defined() ? transposed<T>(W, c.Tn, wT) : rnnlab_blas::op_t<T>(W);
    route.init(W, B, c.Tn, c.onednn && !pf.defined(), c.given.empty());
    bw = rnnlab_blas::op<T>(W);
    if (masked && c.rmask.defined()) m = ptr<T>(c.rmask);
    own_in = !in_seq.defined() || m;
    in = own_in ? c.seq(K) : in_seq;
    own_d = gain.empty() && (zcol < 0 || c.cfg.layer_norm);  // (LN: z_t's rows become dL/dxw_t)
    if (own_d) d = c.seq(N);
    tmp = c.block(std::max(N, K));
    if (!bias.empty()) {
      b = c.w(bias) + row0;
      if (zcol >= 0) for (int64_t j = 0; j < N; ++j) c.bz[zcol + j] += b[j];
      else db.init(B, N, c.opts);
    }
    if (!gain.empty()) {
      g = c.w(gain) + row0;
      u = c.seq(N), inv = c.seq(blocks);
      dg.init(B, N, c.opts);
    }
  }
  bool packs(const Tensor& V) const { return rnnlab_compiled::packs<T>(B, steps, onednn, V); }
  void mul(T* out, int64_t ldo, const T* x, int64_t ldx, const rnnlab_blas::Op<T>& op,
           const rnnlab_panels::Packed& packed, bool acc) const {
    rnnlab_compiled::mul<T>(out, ldo, x, ldx, op, packed, B, acc);
  }
  T* in_at(int64_t t) const { return at_step<T>(in, t); }
  T* dout_at(int64_t t) const { return own_d ? at_step<T>(d, t) : ptr<T>(tmp); }  // a cell's dout here: no copy

  // the forward in two parts, so that a cell can fuse the second into its own row pass:
  // product() the matrix product (into y_t under layer norm, else into out; oneDNN's: a new
  // y), then finish_row() for every row r where rowwise(): LN(y) times the gain added into out,
  // oneDNN's y added, the own bias
  bool rowwise() const { return g || (zcol < 0 && b) || route.fw.defined(); }
  void product(int64_t t, const T* x, T* out, int64_t ldo, bool acc) {
    if (own_in) {
      T* s = in_at(t);
      if (m) for (int64_t k = 0; k < B * K; ++k) s[k] = m[k] * x[k];
      else if (s != x) std::memcpy(s, x, B * K * sizeof(T));
      x = s;
    }
    if ((yo = route.forward(x, K))) return;
    if (g) mul(at_step<T>(u, t), N, x, K, fw, pf, false);
    else mul(out, ldo, x, K, fw, pf, acc);
  }
  void finish_row(int64_t t, int64_t r, T* out, int64_t ldo, bool acc) const {
    const T* bb = zcol < 0 ? b : nullptr;
    T* __restrict__ o = out + r * ldo;
    const T* __restrict__ pr = yo ? yo + r * N : nullptr;
    if (!g) {
      if (pr) for (int64_t j = 0; j < N; ++j) o[j] = (acc ? o[j] : T(0)) + pr[j];
      if (bb) for (int64_t j = 0; j < N; ++j) o[j] += bb[j];
      return;
    }
    T* __restrict__ yr = at_step<T>(u, t) + r * N;
    normalize(pr ? pr : yr, yr, at_step<T>(inv, t) + r * blocks, blocks, N / blocks);
    for (int64_t j = 0; j < N; ++j) o[j] = (acc ? o[j] : T(0)) + g[j] * yr[j] + (bb ? bb[j] : T(0));
  }
  void forward(int64_t t, const T* x, T* out, int64_t ldo, bool acc) {
    product(t, x, out, ldo, acc);
    if (rowwise()) rows(B, N, [&](int64_t r) { finish_row(t, r, out, ldo, acc); });
  }

  // the backward in two parts likewise: prepare_row() for every row where prepares() (dL/db,
  // dL/dg, du = LN'(g dout) or the copy of dout), then product_back():
  // din (B, K) (+)= m * (du W), du = LN'(g dout) or dout, dout = dL/d(out) (rows ld apart)
  T* dstore(int64_t t) const { return g ? at_step<T>(u, t) : own_d ? at_step<T>(d, t) : nullptr; }
  bool prepares() const { return g || own_d || db.buf.defined(); }
  void prepare_row(int64_t t, int64_t r, const T* dout, int64_t ld) const {
    T* dt = dstore(t);
    const T* e = dout + r * ld;
    T *q = dt ? dt + r * N : nullptr, *br = db.row(r), *gr = dg.row(r);
    if (br) for (int64_t j = 0; j < N; ++j) br[j] += e[j];
    if (g) {
      for (int64_t j = 0; j < N; ++j) gr[j] += e[j] * q[j];
      normalize_backward(e, g, q, at_step<T>(inv, t) + r * blocks, q, blocks, N / blocks);
    } else if (q && q != e) {
      std::memcpy(q, e, N * sizeof(T));
    }
  }
  void product_back(int64_t t, const T* dout, int64_t ld, T* din, bool acc) {
    if (T* dt = dstore(t)) dout = dt, ld = N;
    if (pb_open) {
      pb_open = false;
      if (packs(wv.t())) pb.pack(bw);
    }
    const T* q = pb.defined() ? nullptr : route.backward(dout, ld);
    if (!m && !q) return mul(din, K, dout, ld, bw, pb, acc);
    if (!q) mul(ptr<T>(tmp), K, dout, ld, bw, pb, false), q = ptr<T>(tmp);
    for (int64_t k = 0; k < B * K; ++k) din[k] = (acc ? din[k] : T(0)) + (m ? m[k] * q[k] : q[k]);
  }
  void backward(int64_t t, const T* dout, int64_t ld, T* din, bool acc) {
    if (prepares()) rows(B, N, [&](int64_t r) { prepare_row(t, r, dout, ld); });
    product_back(t, dout, ld, din, acc);
  }

  void entries(std::vector<Entry>& e, const Ctx<T>& c, const Tensor& dbz) const {
    e.emplace_back(weight, g ? u : own_d ? d : c.xw.narrow(2, zcol, N), in);
    if (b) e.emplace_back(bias, zcol >= 0 ? dbz.narrow(0, zcol, N) : db.buf.sum(0), c10::nullopt);
    if (g) e.emplace_back(gain, dg.buf.sum(0), c10::nullopt);
  }
};

// one call's loops, as Python calls them
struct Run {
  virtual ~Run() = default;
  virtual std::vector<Tensor> forward() = 0;  // the states (T+1, B, S_k)
  // the sequences the backward reads, the states (T+1, B, S_k) first (Ctx::seq)
  virtual std::vector<Tensor> saved() const = 0;
  // d_seqs[k] = dL/d(states[k][1:]) or None -> (dL/dxw (T, B, G*H), dL/dstate_0, entries)
  virtual std::tuple<Tensor, std::vector<Tensor>, std::vector<Entry>> backward(std::vector<c10::optional<Tensor>> d_seqs) = 0;
};

// The time loops of a Cell: ``states`` (1 or 2), a constructor from the Ctx, and
//   forward(t, z, prev, next): state~_t into next from z_t (its input part and biases in), state_{t-1}
//   backward(t, z, prev, next, dn, dp): from the gates saved in z_t and dn = dL/dstate~_t, dL/dz_t
//     over them and dL/dstate_{t-1} along the cell's paths into dp (written, not added to)
//   entries(e, dbz): its gradients (dbz: the sum of dL/dz_t, for the biases folded into z_t)
template <typename T, typename Cell> struct Loop final : Run {
  Ctx<T> c;
  Cell cell;
  Tensor y_ih, inv_ih;  // LN of the input side: y (T, B, G*H), 1/s (T, B, G)
  const T *b = nullptr, *g_ih = nullptr;

  explicit Loop(Ctx<T>&& ctx) : c(std::move(ctx)), cell(c) {
    if (c.cfg.bias) b = c.bz.data();
    if (c.cfg.layer_norm) y_ih = c.seq(c.GH), inv_ih = c.seq(c.cfg.gates()), g_ih = c.w("ln_gain_ih");
    TORCH_CHECK_VALUE(c.given.empty() || c.given.size() == c.saved.size(), "rnnlab compiled: ", c.given.size(),
                      " saved tensors given, the run has ", c.saved.size());
  }
  std::vector<Tensor> saved() const override { return c.saved; }
  // state k before step t and the cell's state~ after it
  void at(int64_t t, T** prev, T** next) const {
    for (int k = 0; k < Cell::states; ++k)
      prev[k] = at_step<T>(c.st[k], t), next[k] = at_step<T>(c.own.empty() ? c.st[k] : c.own[k], t + c.own.empty());
  }

  std::vector<Tensor> forward() override {
    at::NoGradGuard no_grad;
    const int64_t B = c.B, GH = c.GH, G = c.cfg.gates();
    T *prev[2] = {}, *next[2] = {};
    if (b || g_ih) rows(c.Tn * B, GH, [&](int64_t r) {  // z_t = xw_t + b, or g_ih LN(xw_t) + b, all steps at once
      T* __restrict__ zr = ptr<T>(c.xw) + r * GH;
      if (g_ih) {
        T* __restrict__ yr = ptr<T>(y_ih) + r * GH;
        normalize(zr, yr, ptr<T>(inv_ih) + r * G, G, c.H);
        for (int64_t j = 0; j < GH; ++j) zr[j] = g_ih[j] * yr[j] + (b ? b[j] : T(0));
      } else {
        for (int64_t j = 0; j < GH; ++j) zr[j] += b[j];
      }
    });
    for (int64_t t = 0; t < c.Tn; ++t) {
      T* z = at_step<T>(c.xw, t);
      at(t, prev, next);
      cell.forward(t, z, prev, next);
      for (int k = 0; k < Cell::states; ++k) {  // zoneout's blend, or the carry at padded steps
        const int64_t S = c.st[k].size(2);
        T* s1 = at_step<T>(c.st[k], t + 1);
        const T* kt = c.keep.empty() ? nullptr : at_step<T>(c.keep[k], t);
        if (kt) for (int64_t j = 0; j < B * S; ++j) s1[j] = lerp(prev[k][j], next[k][j], kt[j]);
        for (int64_t r = 0; c.mask && r < B; ++r)
          if (!c.mask[t * B + r]) std::memcpy(s1 + r * S, prev[k] + r * S, S * sizeof(T));
      }
    }
    return c.st;
  }

  std::tuple<Tensor, std::vector<Tensor>, std::vector<Entry>> backward(std::vector<c10::optional<Tensor>> d_seqs) override {
    at::NoGradGuard no_grad;
    const int64_t B = c.B, GH = c.GH, G = c.cfg.gates();
    const bool gated = c.mask || !c.keep.empty();  // the cell sees k dL/dstate_t
    std::vector<Tensor> d, dp, dn;
    for (int k = 0; k < Cell::states; ++k) {
      d.push_back(at::zeros({B, c.st[k].size(2)}, c.opts)), dp.push_back(at::empty_like(d[k]));
      dn.push_back(gated ? at::empty_like(d[k]) : d[k]);
    }
    Acc<T> db, dg;
    if (b) db.init(B, GH, c.opts);
    if (g_ih) dg.init(B, GH, c.opts);
    T *prev[2] = {}, *next[2] = {}, *dnp[2] = {}, *dpp[2] = {};
    for (int64_t t = c.Tn - 1; t >= 0; --t) {
      at(t, prev, next);
      for (int k = 0; k < Cell::states; ++k) {  // dn = k dL/dstate_t (lengths: 0 at padded steps)
        const int64_t S = d[k].size(1);
        if (d_seqs[k].has_value()) add_seq<T>(ptr<T>(d[k]), *d_seqs[k], t);
        dpp[k] = ptr<T>(dp[k]), dnp[k] = ptr<T>(dn[k]);
        const T *dk = ptr<T>(d[k]), *kt = c.keep.empty() ? nullptr : at_step<T>(c.keep[k], t);
        if (kt) for (int64_t j = 0; j < B * S; ++j) dnp[k][j] = kt[j] * dk[j];
        for (int64_t r = 0; c.mask && r < B; ++r)
          for (int64_t j = r * S; j < (r + 1) * S; ++j) dnp[k][j] = c.mask[t * B + r] ? dk[j] : T(0);
      }
      T* z = at_step<T>(c.xw, t);
      cell.backward(t, z, prev, next, dnp, dpp);
      for (int k = 0; k < Cell::states; ++k) {  // the carried part: dL/dstate_{t-1} += (1 - k) dL/dstate_t
        const int64_t S = d[k].size(1);
        const T *dk = ptr<T>(d[k]), *kt = c.keep.empty() ? nullptr : at_step<T>(c.keep[k], t);
        if (kt) for (int64_t j = 0; j < B * S; ++j) dpp[k][j] += (T(1) - kt[j]) * dk[j];
        for (int64_t r = 0; c.mask && r < B; ++r)
          for (int64_t j = r * S; !c.mask[t * B + r] && j < (r + 1) * S; ++j) dpp[k][j] += dk[j];
        std::swap(d[k], dp[k]);
        if (!gated) dn[k] = d[k];
      }
    }
    // dL/db = sum dz_t; dL/dg_ih = sum dz_t y; dL/dxw_t = LN'(g_ih dz_t): after the loop, all steps
    // at once, each batch row's sums in its own row of the accumulators
    if (b || g_ih) at::parallel_for(0, B, 1, [&](int64_t b0, int64_t b1) {
      for (int64_t r = b0; r < b1; ++r) {
        T *__restrict__ br = db.row(r), *__restrict__ gr = dg.row(r);
        for (int64_t t = 0; t < c.Tn; ++t) {
          T* __restrict__ zr = at_step<T>(c.xw, t) + r * GH;
          if (b) for (int64_t j = 0; j < GH; ++j) br[j] += zr[j];
          if (!g_ih) continue;
          const T* __restrict__ yr = at_step<T>(y_ih, t) + r * GH;
          for (int64_t j = 0; j < GH; ++j) gr[j] += zr[j] * yr[j];
          normalize_backward(zr, g_ih, yr, at_step<T>(inv_ih, t) + r * G, zr, G, c.H);
        }
      }
    });
    std::vector<Entry> e;
    const Tensor dbz = b ? db.buf.sum(0) : Tensor();
    if (b) e.emplace_back("bias_ih", dbz, c10::nullopt);
    if (g_ih) e.emplace_back("ln_gain_ih", dg.buf.sum(0), c10::nullopt);
    cell.entries(e, dbz);
    return {c.xw, d, e};
  }
};

// f(std::integral_constant<int, k>()) for the activation code k: a run-time option made a
// template argument (identity only where allowed: the output activation)
template <bool identity = false, typename F> inline void with_act(Act a, const F& f) {
  switch (a) {
    case Act::tanh: return f(std::integral_constant<int, 0>());
    case Act::relu: return f(std::integral_constant<int, 1>());
    case Act::identity: if (identity) return f(std::integral_constant<int, 3>());  // fallthrough
    default: return f(std::integral_constant<int, 2>());
  }
}

// the cells' loops, one factory per family (lstm.cpp, gru.cpp, rnn.cpp): the Ctx moves into the Loop
template <typename T> std::shared_ptr<Run> make_lstm(Ctx<T>&& c);
template <typename T> std::shared_ptr<Run> make_gru(Ctx<T>&& c);
template <typename T> std::shared_ptr<Run> make_simple(Ctx<T>&& c);  // rnn, leaky, residual
template <typename T> std::shared_ptr<Run> make_deep(Ctx<T>&& c);
template <typename T> std::shared_ptr<Run> make_output(Ctx<T>&& c);

}  // namespace rnnlab_compiled
