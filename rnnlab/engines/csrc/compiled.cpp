// The compiled engine's Python module: the typed configuration (Kind, Act, Peephole, Config) and
// its check, and Run, one call's loops (driver.h). Whatever is handed in is checked here: a bad
// combination of options, a missing, unknown or misshapen tensor raise one ValueError naming it.
#include <torch/extension.h>
#include <pybind11/stl.h>

#include "driver.h"

namespace rnnlab_compiled {
namespace {

const char* const KINDS[] = {"lstm", "gru", "rnn", "leaky", "residual", "deep_transition",
                             "output_feedback", "output_recurrent"};
const char* const ACTS[] = {"tanh", "relu", "sigmoid", "identity"};
const char* const PEEPHOLES[] = {"none", "diagonal", "full"};

// name -> shape of every tensor a configuration reads, H units, I inputs, O outputs ({-1}: () or (H,))
std::vector<std::pair<std::string, std::vector<int64_t>>> shapes(const Config& c, int64_t H, int64_t I, int64_t O) {
  const int64_t GH = c.gates() * H;
  const bool out = c.kind >= Kind::output_feedback, hh = c.kind != Kind::output_recurrent;
  std::vector<std::pair<std::string, std::vector<int64_t>>> s = {{"weight_ih", {GH, I}}};
  if (hh) s.push_back({"weight_hh", {GH, H}});
  if (c.bias) s.push_back({"bias_ih", {GH}});
  if (c.bias && hh) s.push_back({"bias_hh", {GH}});
  if (c.layer_norm) s.push_back({"ln_gain_ih", {GH}}), s.push_back({"ln_gain_hh", {GH}});
  const std::vector<int64_t> w = c.peephole == Peephole::diagonal ? std::vector<int64_t>{H} : std::vector<int64_t>{H, H};
  const std::pair<const char*, bool> peep[] = {
      {"weight_ci", true}, {"weight_cf", c.forget_gate}, {"weight_cc", c.peephole_candidate}, {"weight_co", true}};
  for (const auto& q : peep) if (c.peephole != Peephole::none && q.second) s.push_back({q.first, w});
  if (c.kind == Kind::lstm && c.layer_norm) s.push_back({"ln_gain_c", {H}}), s.push_back({"ln_bias_c", {H}});
  if (c.kind == Kind::leaky) s.push_back({c.learned_leak ? "leak_logit" : "leak", {-1}});
  for (int64_t j = 2; c.kind == Kind::deep_transition && j <= c.depth; ++j) {
    s.push_back({"weight_t" + std::to_string(j), {H, H}});
    if (c.bias) s.push_back({"bias_t" + std::to_string(j), {H}});
  }
  if (out) s.push_back({"weight_yh", {H, O}}), s.push_back({"weight_hy", {O, H}});
  if (out && c.bias) s.push_back({"bias_hy", {O}});
  return s;
}

// a shape as Python writes it: (4, 4), (4,)
std::string shape(at::IntArrayRef s) {
  std::string o = "(";
  for (size_t k = 0; k < s.size(); ++k) o += (k ? ", " : "") + std::to_string(s[k]);
  return o + (s.size() == 1 ? ",)" : ")");
}

template <typename T>
std::shared_ptr<Run> make(Ctx<T>&& c) {
  switch (c.cfg.kind) {
    case Kind::lstm: return make_lstm<T>(std::move(c));
    case Kind::gru: return make_gru<T>(std::move(c));
    case Kind::deep_transition: return make_deep<T>(std::move(c));
    case Kind::output_feedback: case Kind::output_recurrent: return make_output<T>(std::move(c));
    default: return make_simple<T>(std::move(c));
  }
}

// One call, everything checked: the input projection xw = x W_ih^T (unless given: (T, B, G*H),
// overwritten by the loops), the state buffers, and the cell's loops. With ``saved`` (a forward's
// Run::saved() of the same call) a run for the backward alone: its sequences are those.
template <typename T>
std::shared_ptr<Run> make_run(const Config& cfg, Params p, const Tensor& x0, c10::optional<Tensor> xw,
                              std::vector<Tensor> state0, c10::optional<Tensor> mask, std::vector<Tensor> keep,
                              std::vector<Tensor> saved, bool onednn) {
  at::NoGradGuard no_grad;
  Ctx<T> c;
  c.cfg = cfg, c.opts = x0.options(), c.given = std::move(saved), c.onednn = onednn;
  const bool rebuilt = !c.given.empty();  // for the backward: the forward's sequences given
  const Tensor x = x0.contiguous();
  const int64_t Tn = x.size(0), B = x.size(1), I = x.size(2), G = cfg.gates(), n = cfg.states();
  const char* kind = KINDS[static_cast<int>(cfg.kind)];
  const bool out = cfg.kind >= Kind::output_feedback;
  TORCH_CHECK_VALUE(p.count("weight_ih") && (!out || p.count("weight_hy")), "rnnlab compiled: the ", kind,
                    " cell needs weight_ih", out ? " and weight_hy" : "");
  const int64_t H = p["weight_ih"].size(0) / G, O = out ? p["weight_hy"].size(0) : 0;
  for (const auto& ns : shapes(cfg, H, I, O)) {
    TORCH_CHECK_VALUE(p.count(ns.first), "rnnlab compiled: the ", kind, " cell needs the tensor ", ns.first);
    Tensor& t = p[ns.first];
    const bool leak = ns.second[0] == -1;
    TORCH_CHECK_VALUE(leak ? t.dim() == 0 || t.sizes() == at::IntArrayRef{H} : t.sizes() == at::IntArrayRef(ns.second),
                      "rnnlab compiled: ", ns.first, " must be ", leak ? "() or (H,)" : shape(ns.second),
                      ", got ", shape(t.sizes()));
    TORCH_CHECK_VALUE(t.scalar_type() == x.scalar_type() && t.device() == x.device(), "rnnlab compiled: ",
                      ns.first, " is ", t.toString(), ", the input ", x.toString());
    c.p[ns.first] = t.contiguous();
  }
  if (p.count("recurrent_mask")) {  // m (B, R): R = O for the output-recurrent cell's y
    c.rmask = p["recurrent_mask"].contiguous();
    const int64_t R = cfg.kind == Kind::output_recurrent ? O : H;
    TORCH_CHECK_VALUE(c.rmask.sizes() == at::IntArrayRef({B, R}) && c.rmask.scalar_type() == x.scalar_type(),
                      "rnnlab compiled: recurrent_mask must be ", shape({B, R}), ", got ", shape(c.rmask.sizes()));
    p.erase("recurrent_mask");
  }
  for (const auto& kv : p)
    TORCH_CHECK_VALUE(c.p.count(kv.first), "rnnlab compiled: the ", kind, " cell has no tensor ", kv.first);
  c.Tn = Tn, c.B = B, c.H = H, c.GH = G * H;
  TORCH_CHECK_VALUE(static_cast<int64_t>(state0.size()) == n && (keep.empty() || keep.size() == state0.size()),
                    "rnnlab compiled: the ", kind, " cell has ", n, " states (and zoneout one keep weight per state)");
  for (int64_t k = 0; k < n; ++k) {
    const int64_t S = k == 1 && O ? O : H;
    TORCH_CHECK_VALUE(state0[k].sizes() == at::IntArrayRef({B, S}), "rnnlab compiled: state ", k, " must be ",
                      shape({B, S}), ", got ", shape(state0[k].sizes()));
    c.st.push_back(c.seq(S, Tn + 1));
    if (!rebuilt) c.st[k][0].copy_(state0[k]);
  }
  for (int64_t k = 0; k < n && !keep.empty(); ++k) {
    const int64_t S = c.st[k].size(2);
    TORCH_CHECK_VALUE(keep[k].sizes() == at::IntArrayRef({Tn, B, S}), "rnnlab compiled: keep weights ", k,
                      " must be ", shape({Tn, B, S}), ", got ", shape(keep[k].sizes()));
    c.keep.push_back(keep[k].to(x.scalar_type()).contiguous()), c.own.push_back(c.seq(S));
  }
  if (mask.has_value() && mask->defined()) {
    c.mask_t = mask->to(at::kBool).reshape({Tn, B}).contiguous();
    c.mask = c.mask_t.template data_ptr<bool>();
  }
  if (cfg.bias) c.bz.assign(c.w("bias_ih"), c.w("bias_ih") + c.GH);
  if (rebuilt) {
    c.xw = c.seq(c.GH);  // the forward's gates
  } else if (xw.has_value() && xw->defined()) {
    TORCH_CHECK_VALUE(xw->sizes() == at::IntArrayRef({Tn, B, c.GH}) && xw->is_contiguous(),
                      "rnnlab compiled: xw must be contiguous ", shape({Tn, B, c.GH}));
    c.xw = *xw;
    c.saved.push_back(c.xw);
  } else {  // all steps in one product
    c.xw = c.seq(c.GH);
    rnnlab_blas::mm<T>(ptr<T>(c.xw), c.GH, ptr<T>(x), I, rnnlab_blas::op_t<T>(c.p["weight_ih"]), Tn * B, T(0));
  }
  return make<T>(std::move(c));
}

}  // namespace

void Config::check() const {
  const bool lstm = kind == Kind::lstm, gru = kind == Kind::gru, out = kind >= Kind::output_feedback;
  auto need = [&](bool ok, const char* why) { TORCH_CHECK_VALUE(ok, "rnnlab compiled: ", KINDS[static_cast<int>(kind)], ": ", why); };
  need(lstm || (forget_gate && peephole == Peephole::none && !peephole_candidate),
       "forget_gate, peephole and peephole_candidate are options of the LSTM");
  need(!peephole_candidate || peephole != Peephole::none, "peephole_candidate needs a peephole (diagonal or full)");
  need(gru || reset_after, "reset_after is an option of the GRU");
  need(kind == Kind::leaky || !learned_leak, "learned_leak is an option of the leaky RNN");
  need(kind == Kind::residual || !gated, "gated is an option of the residual RNN");
  need(kind == Kind::deep_transition ? depth >= 1 : depth == 1 && !skip, "depth (>= 1) and skip belong to the deep transition");
  need(nonlinearity != Act::identity && (!(lstm || gru) || nonlinearity == Act::tanh),
       "the nonlinearity is tanh, relu or sigmoid (the LSTM and GRU have none to choose)");
  need(out ? output_activation != Act::relu : output_activation == Act::identity,
       "output_activation (identity, tanh or sigmoid) belongs to the output cells");
  need(!(out && layer_norm), "layer_norm of the output cells is not implemented here");
}

std::vector<std::string> Config::parameters() const {
  std::vector<std::string> names;
  for (const auto& ns : shapes(*this, 1, 1, 1)) names.push_back(ns.first);
  return names;
}

// regularization.py's masks (``bernoulli``) in one pass, the same bits as its torch operations:
// n samples [u < threshold] in ``dtype``, u the signed 16-bit lanes, lowest first, of
// z_i = splitmix64(i golden + seed), i = 1, 2, ...
Tensor bernoulli(int64_t n, int64_t threshold, int64_t seed, at::ScalarType dtype) {
  TORCH_CHECK_VALUE(n >= 0 && (dtype == at::kFloat || dtype == at::kDouble), "rnnlab compiled: bernoulli takes n >= 0 and float32 or float64");
  Tensor out = at::empty({n}, at::TensorOptions().dtype(dtype));
  AT_DISPATCH_FLOATING_TYPES(dtype, "bernoulli", [&] {
    scalar_t* o = out.data_ptr<scalar_t>();
    at::parallel_for(0, (n + 3) / 4, 1 << 14, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        uint64_t z = static_cast<uint64_t>(i + 1) * 0x9E3779B97F4A7C15ULL + static_cast<uint64_t>(seed);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        z ^= z >> 31;
        for (int64_t j = 0; j < 4 && 4 * i + j < n; ++j)
          o[4 * i + j] = static_cast<int16_t>(static_cast<uint16_t>(z >> (16 * j))) < threshold ? scalar_t(1) : scalar_t(0);
      }
    });
  });
  return out;
}

}  // namespace rnnlab_compiled

namespace py = pybind11;
using namespace rnnlab_compiled;

std::shared_ptr<Run> run(const Config& cfg, Params p, const Tensor& x, c10::optional<Tensor> xw,
                         std::vector<Tensor> state0, c10::optional<Tensor> mask, std::vector<Tensor> keep,
                         std::vector<Tensor> saved, bool onednn) {
  cfg.check();
  TORCH_CHECK_VALUE(x.device().is_cpu() && x.dim() == 3 && (x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble),
                    "rnnlab compiled: the input must be float32 or float64 (T, B, I) on the CPU, got ", x.toString(), " ", shape(x.sizes()));
  if (x.scalar_type() == at::kDouble) return make_run<double>(cfg, p, x, xw, state0, mask, keep, saved, false);
  return make_run<float>(cfg, p, x, xw, state0, mask, keep, saved, onednn);
}

// a direct Python module, not torch operators: generation makes one call per step, and torch's
// dispatcher would cost more than the step itself
PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  py::enum_<Kind> kind(m, "Kind", "the cell families");
  for (int k = 0; k < 8; ++k) kind.value(KINDS[k], static_cast<Kind>(k));
  py::enum_<Act> act(m, "Act", "nonlinearities");
  for (int k = 0; k < 4; ++k) act.value(ACTS[k], static_cast<Act>(k));
  py::enum_<Peephole> peep(m, "Peephole", "the LSTM's peephole connections");
  for (int k = 0; k < 3; ++k) peep.value(PEEPHOLES[k], static_cast<Peephole>(k));
  py::class_<Config>(m, "Config", "which cell and options to run (those of other kinds keep their defaults)")
      .def(py::init<>())
      .def_readwrite("kind", &Config::kind).def_readwrite("bias", &Config::bias)
      .def_readwrite("layer_norm", &Config::layer_norm).def_readwrite("nonlinearity", &Config::nonlinearity)
      .def_readwrite("forget_gate", &Config::forget_gate).def_readwrite("peephole", &Config::peephole)
      .def_readwrite("peephole_candidate", &Config::peephole_candidate).def_readwrite("reset_after", &Config::reset_after)
      .def_readwrite("learned_leak", &Config::learned_leak).def_readwrite("gated", &Config::gated)
      .def_readwrite("depth", &Config::depth).def_readwrite("skip", &Config::skip)
      .def_readwrite("output_activation", &Config::output_activation)
      .def("check", &Config::check, "raise ValueError on a combination the engine does not run")
      .def("parameters", &Config::parameters, "the names of the tensors a run reads");
  m.def("set_onednn", [](const std::string& how) {
    const char* const names[] = {"measure", "always", "never"};
    for (int k = 0; k < 3; ++k) if (how == names[k]) return void(rnnlab_onednn::policy() = k);
    TORCH_CHECK_VALUE(false, "rnnlab compiled: set_onednn takes measure, always or never, got ", how);
  }, "how float32 per-step products choose oneDNN: measure (by timing, the default), always, never");
  m.def("set_panels", [](const std::string& how) {
    const char* const names[] = {"measure", "always", "never"};
    for (int k = 0; k < 3; ++k) if (how == names[k]) return void(rnnlab_panels::policy() = k);
    TORCH_CHECK_VALUE(false, "rnnlab compiled: set_panels takes measure, always or never, got ", how);
  }, "how float32 per-step products choose rnnlab's packed kernel (panels.h): measure (by timing, the default), always, never");
  m.def("panels_calls", [] { return rnnlab_panels::calls().load(); }, "the products run on the packed kernel so far");
  m.def("bernoulli", &bernoulli, "regularization.py's masks: n samples [u < threshold], u 16-bit lanes of splitmix64(i golden + seed)");
  m.def("empty_cache", &rnnlab_pool::empty_cache,
        "hand the blocks the engine's sequences left for its next calls back to the system; the bytes");
  m.def("set_pool_limit", [](size_t bytes) {
    rnnlab_pool::Pool& p = rnnlab_pool::pool();
    std::lock_guard<std::mutex> lock(p.mu);
    std::swap(p.limit, bytes);
    return bytes;
  }, "the most bytes of freed blocks kept for later calls (0: none kept; blocks kept already stay); the limit before");
  py::class_<Run, std::shared_ptr<Run>>(m, "Run", "one call's time loops")
      .def(py::init(&run), py::arg("config"), py::arg("params"), py::arg("x"), py::arg("xw"), py::arg("state0"),
           py::arg("mask"), py::arg("keep"), py::arg("saved") = std::vector<Tensor>(), py::arg("onednn") = false,
           "saved: the forward's sequences (saved()) of the same call, to run its backward alone; onednn: "
           "the per-step products may take oneDNN where it measures faster")
      .def("forward", &Run::forward, "the forward loop: the states (T+1, B, S_k), row 0 the initial")
      .def("saved", &Run::saved, "the sequences the backward reads, the states (T+1, B, S_k) first")
      .def("backward", &Run::backward, "the backward loop: (dL/dxw, [dL/dstate_0], [(name, d, a)])");
}
