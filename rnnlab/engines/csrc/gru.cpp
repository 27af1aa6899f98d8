// The GRU's row kernels (rnnlab/cells/gru_cell.py), forward and derivative side by side; gate
// order r, z, n; h~ = m h_{t-1} under recurrent dropout, else h_{t-1}.
//
// reset_after (torch's form): q = W_hh h~ + b_hh (layer norm: g_hh LN(W_hh h~) + b_hh), one
// Product into its own buffer; r = sigma(z_r + q_r), u = sigma(z_u + q_u), n = tanh(z_n + r q_n)
//   backward: da_n = dn (1 - n^2), da_u = dh (h_{t-1} - n) u (1 - u), da_r = da_n q_n r (1 - r),
//   dq = (da_r, da_u, da_n r), dh_{t-1} = dh u + dq W_hh (the Product's)
// notes' form: r, u = sigma(z_{r,u} + W_h{r,u} h~ + b_h{r,u}), n = tanh(z_n + W_hn (r h~) + b_hn)
//   (each product a Product into z, normalised apart under layer norm)
//   backward: d(r h~) = da_n W_hn, dh_{t-1} += d(r h~) r, da_r = d(r h~) h_{t-1} r (1 - r)
// both: h_t = (1 - u) n + u h_{t-1} = lerp(n, h_{t-1}, u), dn = dh (1 - u), dh_{t-1} = dh u + ...
// The forward leaves r, u, n in z (and q_n per step, reset_after); the backward dz over them.
#include "driver.h"

namespace rnnlab_compiled {
namespace {

// The row kernels on one batch row (each block its own __restrict__ pointer, so the loops
// vectorise without alias checks). reset_after, forward: r, u, n over z's blocks, q_n kept
template <typename T>
inline void gru_row(T* __restrict__ zr, T* __restrict__ zu, T* __restrict__ zn, const T* __restrict__ qr,
                    const T* __restrict__ qu, const T* __restrict__ qn, T* __restrict__ m,
                    const T* __restrict__ h, T* __restrict__ h1, int64_t H) {
#pragma omp simd
  for (int64_t j = 0; j < H; ++j) {
    const T r = sigm(zr[j] + qr[j]), u = sigm(zu[j] + qu[j]), n = tanh_(zn[j] + r * qn[j]);
    zr[j] = r, zu[j] = u, zn[j] = n, m[j] = qn[j];
    h1[j] = n + u * (h[j] - n);
  }
}

// reset_after, backward: da_r, da_u, da_n over the gates, (da_r, da_u, da_n r) into dq, dh u
template <typename T>
inline void gru_back_row(T* __restrict__ zr, T* __restrict__ zu, T* __restrict__ zn, T* __restrict__ dqr,
                         T* __restrict__ dqu, T* __restrict__ dqn, const T* __restrict__ m,
                         const T* __restrict__ h, const T* __restrict__ g, T* __restrict__ dprev, int64_t H) {
#pragma omp simd
  for (int64_t j = 0; j < H; ++j) {
    const T r = zr[j], u = zu[j], n = zn[j], du = g[j] * u, dnn = g[j] - du;
    const T dan = dnn - dnn * n * n, dau = g[j] * (h[j] - n) * (u - u * u), dar = dan * m[j] * (r - r * r);
    dprev[j] = du;
    zr[j] = dar, zu[j] = dau, zn[j] = dan;
    dqr[j] = dar, dqu[j] = dau, dqn[j] = dan * r;
  }
}

// the notes' form: r, u (their products in z), r h into rh; then n and h_t (z_n's product in)
template <typename T>
inline void gru_gates_row(T* __restrict__ zr, T* __restrict__ zu, const T* __restrict__ h,
                          T* __restrict__ rh, int64_t H) {
#pragma omp simd
  for (int64_t j = 0; j < H; ++j) {
    const T r = sigm(zr[j]);
    zr[j] = r, zu[j] = sigm(zu[j]), rh[j] = r * h[j];
  }
}
template <typename T>
inline void gru_new_row(const T* __restrict__ zu, T* __restrict__ zn, const T* __restrict__ h,
                        T* __restrict__ h1, int64_t H) {
#pragma omp simd
  for (int64_t j = 0; j < H; ++j) {
    const T n = tanh_(zn[j]);
    zn[j] = n;
    h1[j] = n + zu[j] * (h[j] - n);
  }
}
// its backward: da_u, da_n over the gates and dh u; then, from d(r h), da_r and dh += d(r h) r
template <typename T>
inline void gru_back_un_row(T* __restrict__ zu, T* __restrict__ zn, const T* __restrict__ h,
                            const T* __restrict__ g, T* __restrict__ dprev, int64_t H) {
#pragma omp simd
  for (int64_t j = 0; j < H; ++j) {
    const T u = zu[j], n = zn[j], du = g[j] * u, dnn = g[j] - du;
    dprev[j] = du;
    zu[j] = g[j] * (h[j] - n) * (u - u * u);
    zn[j] = dnn - dnn * n * n;
  }
}
template <typename T>
inline void gru_back_r_row(T* __restrict__ zr, const T* __restrict__ h, const T* __restrict__ drh,
                           T* __restrict__ dprev, int64_t H) {
#pragma omp simd
  for (int64_t j = 0; j < H; ++j) {
    const T r = zr[j];
    dprev[j] += drh[j] * r;
    zr[j] = drh[j] * h[j] * (r - r * r);
  }
}

template <typename T, bool ra>
struct Gru {
  static constexpr int states = 1;
  Ctx<T>& c;
  const int64_t B, H;
  Product<T> hh;                // reset_after: all rows, into q; notes' form: rows r, u into z
  std::vector<Product<T>> hn;   // notes' form: rows n, into z_n
  Tensor q, qn, drh;  // reset_after: q (B, 3H), q_n of every step (T, B, H); notes: d(r h~) (B, H)

  explicit Gru(Ctx<T>& c_)
      : c(c_), B(c.B), H(c.H),
        hh(c, "weight_hh", 0, ra ? 3 * H : 2 * H, c.prev(0), ra ? -1 : 0, true, "bias_hh", "ln_gain_hh", ra ? 3 : 2) {
    if (ra) q = c.block(3 * H), qn = c.seq(H);
    else hn.emplace_back(c, "weight_hh", 2 * H, H, Tensor(), 2 * H, true, "bias_hh", "ln_gain_hh", 1), drh = c.block(H);
  }

  void forward(int64_t t, T* z, T* const* prev, T* const* next) {
    const T* h0 = prev[0];
    T* h1 = next[0];
    const int64_t G = 3 * H;
    if (ra) {
      T *q3 = ptr<T>(q), *m = at_step<T>(qn, t);
      hh.forward(t, h0, q3, G, false);
      rows(B, H, [&](int64_t b) {
        T *zr = z + b * G, *qr = q3 + b * G;
        gru_row<T>(zr, zr + H, zr + 2 * H, qr, qr + H, qr + 2 * H, m + b * H, h0 + b * H, h1 + b * H, H);
      });
      return;
    }
    hh.forward(t, h0, z, G, true);  // z_{r,u} += W_h{r,u} h~ (+ LN)
    T* rh = hn[0].in_at(t);
    rows(B, H, [&](int64_t b) { gru_gates_row<T>(z + b * G, z + b * G + H, h0 + b * H, rh + b * H, H); });
    hn[0].forward(t, rh, z + 2 * H, G, true);  // z_n += W_hn (m r h) + b_hn
    rows(B, H, [&](int64_t b) { gru_new_row<T>(z + b * G + H, z + b * G + 2 * H, h0 + b * H, h1 + b * H, H); });
  }

  void backward(int64_t t, T* z, T* const* prev, T* const*, T* const* dn, T* const* dp) {
    const T *h0 = prev[0], *dh = dn[0];
    T* dq = dp[0];
    const int64_t G = 3 * H;
    if (ra) {
      T* d3 = hh.dout_at(t);
      const T* m = at_step<T>(qn, t);
      rows(B, H, [&](int64_t b) {
        T *zr = z + b * G, *dr = d3 + b * G;
        gru_back_row<T>(zr, zr + H, zr + 2 * H, dr, dr + H, dr + 2 * H, m + b * H, h0 + b * H, dh + b * H,
                        dq + b * H, H);
      });
      hh.backward(t, d3, G, dq, true);  // dh_{t-1} += m (dq W_hh)
      return;
    }
    rows(B, H, [&](int64_t b) { gru_back_un_row<T>(z + b * G + H, z + b * G + 2 * H, h0 + b * H, dh + b * H, dq + b * H, H); });
    T* d = ptr<T>(drh);
    hn[0].backward(t, z + 2 * H, G, d, false);  // d(r h) = m (da_n W_hn)
    rows(B, H, [&](int64_t b) { gru_back_r_row<T>(z + b * G, h0 + b * H, d + b * H, dq + b * H, H); });
    hh.backward(t, z, G, dq, true);
  }

  void entries(std::vector<Entry>& e, const Tensor& dbz) const {
    hh.entries(e, c, dbz);
    for (const auto& p : hn) p.entries(e, c, dbz);
  }
};

}  // namespace

template <typename T> std::shared_ptr<Run> make_gru(Ctx<T>&& c) {
  if (c.cfg.reset_after) return std::make_shared<Loop<T, Gru<T, true>>>(std::move(c));
  return std::make_shared<Loop<T, Gru<T, false>>>(std::move(c));
}
template std::shared_ptr<Run> make_gru<float>(Ctx<float>&&);
template std::shared_ptr<Run> make_gru<double>(Ctx<double>&&);

}  // namespace rnnlab_compiled
