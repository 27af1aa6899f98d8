"""--device and --precision: a device the machine lacks stops before anything is written; runs
load whatever device they were saved from; DDP's backend follows the model; bf16 and fp16 train."""
import json

import pytest
import torch

import rnnlab
from rnnlab.cli import main
from rnnlab.errors import ConfigError
from rnnlab.training import checkpoint, distributed
from rnnlab.training.device import resolve_device

TEXT = "".join(f"class C{i}:\n    value = {i * 3}\n\n" for i in range(200))
FAST = dict(hidden_size=16, embed_size=8, batch_size=4, tbptt=16, max_steps=6, epochs=0,
            progress=False, sample_length=0)
no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")


@pytest.fixture
def corpus(tmp_path):
    p = tmp_path / "corpus.txt"
    p.write_text(TEXT)
    return p


def test_auto_and_cpu_resolve_and_bad_names_are_one_error():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else
                                           resolve_device("auto").type)
    for bad in ("gpu", "cuda:x", "tpu"):
        with pytest.raises(ConfigError, match="device takes one of"):
            resolve_device(bad)


@no_cuda
def test_cuda_without_cuda_stops_before_anything_is_written(corpus, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--data", str(corpus), "--out", str(out), "--device", "cuda",
                 "--max-steps", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "asks for a CUDA GPU" in err[0] and "--device cpu or auto" in err[0]
    assert not out.exists()
    for argv in (["sample", str(out)], ["evaluate", str(out)], ["predict", str(out)],
                 ["diagnose"], ["bench", "--sizes", "small"]):
        assert main([*argv, "--device", "cuda:0"]) == 2
        assert "asks for a CUDA GPU" in capsys.readouterr().err
    assert not out.exists()


def test_distributed_backend_follows_the_model_device():
    assert distributed.backend_for(torch.device("cuda", 0)) == "nccl"
    assert distributed.backend_for(torch.device("cpu")) == "gloo"
    assert distributed.backend_for(None) == "gloo"


class OnCuda(torch.Tensor):
    """A tensor that says it lives on a CUDA device, as a GPU run's weights do; ``.to("cpu")``
    gives its values as a plain CPU tensor (and is the only way out of it)."""
    moved = []

    @property
    def device(self):
        return torch.device("cuda", 0)

    def to(self, *args, **kwargs):
        OnCuda.moved.append(args)
        return torch.Tensor(self.as_subclass(torch.Tensor)).to(*args, **kwargs)

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        out = super().__torch_function__(func, types, args, kwargs or {})
        return out


def test_a_gpu_run_resumes_evaluates_and_samples_on_the_cpu(corpus, tmp_path, monkeypatch):
    """The checkpoints of a run whose tensors say they are on CUDA hold plain CPU tensors (the
    save path moves everything to the CPU), and the run resumes, evaluates and samples on the CPU."""
    written = []
    real_save, real_state_dict = checkpoint.save_file, torch.nn.Module.state_dict

    def save_file(tensors, path, metadata=None):
        written.append({k: v.device.type for k, v in tensors.items()})
        assert all(type(v) is torch.Tensor for v in tensors.values())
        return real_save(tensors, path, metadata=metadata)

    def state_dict(self, *args, **kwargs):  # every weight as a GPU run hands it to the save path
        sd = real_state_dict(self, *args, **kwargs)
        return type(sd)((k, v.as_subclass(OnCuda) if torch.is_tensor(v) else v) for k, v in sd.items())

    monkeypatch.setattr(checkpoint, "save_file", save_file)
    OnCuda.moved.clear()
    with monkeypatch.context() as m:
        m.setattr(torch.nn.Module, "state_dict", state_dict)
        out = str(tmp_path / "run")
        rnnlab.train(data=str(corpus), out=out, device="cpu", **FAST)
    assert written and all(t == "cpu" for w in written for t in w.values())
    assert any("cpu" in args for args in OnCuda.moved)  # the weights were moved, not assumed there
    summary = rnnlab.train(resume=out, max_steps=9, device="cpu", progress=False, sample_length=0)
    assert summary["steps"] == 9
    assert rnnlab.evaluate(out, device="cpu")["loss"] > 0
    assert rnnlab.sample(out, prime="class", length=10, seed=0, device="cpu").startswith("class")


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_trains_close_to_fp32(corpus, tmp_path, precision):
    """The first update's loss under autocast is fp32's within bfloat16's/float16's rounding, the
    run ends with finite figures, and an fp16 run keeps its loss scale in the checkpoint."""
    losses = {}
    for p in ("fp32", precision):
        out = tmp_path / p
        s = rnnlab.train(data=str(corpus), out=str(out), device="cpu", precision=p,
                         **{**FAST, "max_steps": 3}, log_every=1)
        rec = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
        losses[p] = [r["loss"] for r in rec if r.get("split") == "train"]
        assert s["steps"] == 3
    if precision == "bf16":
        assert abs(losses[precision][0] - losses["fp32"][0]) < 0.02
    else:  # loss scaling skips the first updates whose scaled gradient overflows (scale 2^16)
        assert all(l == l and l < 10 for l in losses[precision])  # noqa: E741
    if precision == "fp16":
        groups, meta = checkpoint.read_checkpoint(tmp_path / "fp16" / "checkpoint.safetensors")
        assert meta["trainer"]["scaler"]["scale"] > 0
        s = rnnlab.train(resume=str(tmp_path / "fp16"), max_steps=4, device="cpu", progress=False,
                         sample_length=0)
        assert s["steps"] == 4


def test_precision_is_checked():
    with pytest.raises(ConfigError, match="precision"):
        rnnlab.train(precision="fp8", max_steps=1)


@pytest.mark.parametrize("engine", ["native", "bptt"])
def test_the_time_loop_runs_in_float32_under_autocast(engine):
    """Under bf16 autocast every engine (torch's kernel too, which oneDNN may not run in bf16)
    runs the layer's time loop on float32 states: outputs and gradients as without autocast."""
    torch.manual_seed(0)
    layer = rnnlab.LSTM(3, 4, engine=engine)
    x = torch.randn(5, 2, 3)
    want = layer(x)[0]
    (gw,) = torch.autograd.grad(want.sum(), layer.weight_hh_l0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = layer(x)[0]
    (gg,) = torch.autograd.grad(got.sum(), layer.weight_hh_l0)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    torch.testing.assert_close(gg, gw, rtol=0, atol=0)
