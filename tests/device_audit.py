"""A second device on a machine with only a CPU, for the tests of ``--device``.

:class:`DeviceAudit` is a torch function mode that keeps track of which tensors would live on an
accelerator if the model were on one. It answers ``tensor.device`` with the pretend device
``cpu:0`` for those, so that rnnlab's code (``model_device``, ``next(model.parameters()).device``)
sees a model on a device of its own; and it reports every torch call that would fail on a GPU:

- a tensor on the pretend device (the model's weights, ``x.to(model_device(model))``, a tensor
  made with ``device=...`` of the model, and whatever is computed from them) mixed in one call
  with a CPU tensor that has at least one dimension (a CPU scalar of 0 dimensions may mix, as it
  may with CUDA; a CPU index of a tensor on the device too, and copies either way);
- ``.numpy()`` of a tensor on the device.

Calls this mode cannot see into (an engine's time loop, one C++ call; an autograd function; a
module's forward as a whole) put their outputs where their inputs or weights are.

``.item()``, ``float()``, ``.tolist()``, ``.cpu()`` and ``.to("cpu")`` are allowed (they copy to
the CPU), and so are the calls that want their lengths on the CPU (``pack_padded_sequence``).
Everything still computes on the CPU with the real values, so data-dependent code runs as it
would on a GPU. Each finding names the call and the rnnlab line that made it.
"""
from __future__ import annotations

import traceback
from typing import Any, List

import torch
from torch.overrides import TorchFunctionMode
from torch.utils.weak import WeakIdKeyDictionary

PRETEND = torch.device("cpu", 0)

#: calls that take CPU tensors beside device tensors on a GPU too
MIXING_ALLOWED = ("pack_padded_sequence", "_pack_padded_sequence", "copy_", "set_")
#: calls that bring a device tensor's values to the CPU (Python numbers or a CPU tensor)
TO_HOST = ("item", "tolist", "__float__", "__int__", "__bool__", "__index__", "__len__",
           "__repr__", "__format__", "__array__", "numpy")


def _name(func) -> str:
    return getattr(func, "__qualname__", None) or getattr(func, "__name__", None) or repr(func)


def _tensors(obj, out: List[torch.Tensor]) -> List[torch.Tensor]:
    if torch.is_tensor(obj):
        out.append(obj)
    elif isinstance(obj, (list, tuple)):
        for o in obj:
            _tensors(o, out)
    elif isinstance(obj, dict):
        for o in obj.values():
            _tensors(o, out)
    return out


def _where_in_rnnlab() -> str:
    for frame in reversed(traceback.extract_stack()[:-3]):
        if "/rnnlab/" in frame.filename and "/tests/" not in frame.filename:
            return f"{frame.filename.split('/rnnlab/', 1)[1]}:{frame.lineno}"
    return "?"


class DeviceAudit(TorchFunctionMode):
    """``with DeviceAudit(model) as audit: ...`` then ``audit.findings`` (see the module docstring)."""

    def __init__(self, *modules: torch.nn.Module):
        super().__init__()
        self.on_device = WeakIdKeyDictionary()
        self.findings: List[str] = []
        self.moved = 0                       # tensors put on the device by .to(device)
        for m in modules:
            self.put(m)

    def put(self, module: torch.nn.Module) -> None:
        """Every parameter and buffer of ``module`` on the pretend device."""
        for t in list(module.parameters()) + list(module.buffers()):
            self.on_device[t] = True

    def __enter__(self):
        # a module's outputs are where its weights or inputs are, also when it computes them in
        # calls this mode does not see (an engine's C++ operator or autograd function)
        self._hook = torch.nn.modules.module.register_module_forward_hook(self._module_outputs)
        apply = self._apply = torch.autograd.Function.__dict__["apply"]
        audit = self

        def apply_on_device(cls, *args, **kwargs):  # an autograd function's outputs likewise
            out = apply.__func__(cls, *args, **kwargs)
            if any(audit.on(t) for t in _tensors(args, []) + _tensors(kwargs, [])):
                for t in _tensors(out, []):
                    audit.on_device[t] = True
            return out

        torch.autograd.Function.apply = classmethod(apply_on_device)
        # an engine's time loop (one C++ call without gradients) likewise
        from rnnlab import engines
        self._runners = dict(engines.RUNNERS)
        for name, runner in self._runners.items():
            engines.RUNNERS[name] = self._outputs_follow(runner)
        return super().__enter__()

    def _outputs_follow(self, fn):
        def wrapped(call, x, state0):
            out = fn(call, x, state0)
            if self.on(x) or any(self.on(t) for t in _tensors(list(call.p.values()), [])):
                for t in _tensors(out, []):
                    self.on_device[t] = True
            return out
        return wrapped

    def __exit__(self, *exc):
        from rnnlab import engines
        self._hook.remove()
        torch.autograd.Function.apply = self._apply
        engines.RUNNERS.update(self._runners)
        return super().__exit__(*exc)

    def _module_outputs(self, module, inputs, output):
        weights = list(module.parameters(recurse=False)) + list(module.buffers(recurse=False))
        if any(self.on(t) for t in _tensors(inputs, []) + weights) or \
                any(self.on(t) for t in module.parameters()):
            for t in _tensors(output, []):
                self.on_device[t] = True

    def on(self, t) -> bool:
        return torch.is_tensor(t) and t in self.on_device

    def note(self, what: str) -> None:
        finding = f"{what} at rnnlab/{_where_in_rnnlab()}"
        if finding not in self.findings:
            self.findings.append(finding)

    def _target(self, args, kwargs):
        """The device a ``.to(...)`` call asks for: True (the pretend device), False (the CPU),
        None (no device named: a dtype only)."""
        for a in list(args[1:]) + [kwargs.get("device"), kwargs.get("other")]:
            if torch.is_tensor(a):
                return self.on(a)
            if isinstance(a, (str, torch.device)):
                d = torch.device(a)
                if d.type != "cpu":
                    raise AssertionError(f"asked for device {d} in a test without one")
                return d.index == 0
        return None

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name, short = _name(func), getattr(func, "__name__", "")
        if func == torch.Tensor.device.__get__:
            return PRETEND if self.on(args[0]) else func(*args, **kwargs)
        if short in ("to", "cpu", "cuda") and args and torch.is_tensor(args[0]):
            source = args[0]
            target = False if short == "cpu" else self._target(args, kwargs)
            if target is not None and short == "to":
                kwargs = dict(kwargs)
                if "device" in kwargs:
                    kwargs["device"] = "cpu"
                args = tuple("cpu" if isinstance(a, (str, torch.device)) else
                             (a.as_subclass(torch.Tensor) if torch.is_tensor(a) and i else a)
                             for i, a in enumerate(args))
            out = func(*args, **kwargs)
            if target is None:
                target = self.on(source)
            if out is source and target != self.on(source):
                out = out.clone()             # a move makes a new tensor, as it does between devices
            if torch.is_tensor(out):
                if target:
                    self.on_device[out] = True
                    self.moved += 1
                elif out in self.on_device:
                    del self.on_device[out]
            return out
        tensors = _tensors(args, []) + _tensors(kwargs, [])
        if short == "numpy" and any(self.on(t) for t in tensors[:1]):
            self.note(f"{name}() of a tensor on the device")
        if short not in TO_HOST and short not in MIXING_ALLOWED:
            device = [t for t in tensors if self.on(t)]
            host = [t for t in tensors if not self.on(t) and t.dim() > 0]
            if short in ("__getitem__", "__setitem__"):
                # a device tensor takes CPU indices and values; a CPU tensor takes device values
                # (copies) but not device indices
                index = _tensors(args[1:2], [])
                device = [] if self.on(args[0]) else [t for t in index if self.on(t)]
                host = [args[0]] if device else []
            if device and host:
                shapes = ", ".join(str(tuple(t.shape)) for t in host)
                self.note(f"{name}: CPU tensor(s) {shapes} with tensors on the model's device")
        out = func(*args, **kwargs)
        device_asked = kwargs.get("device")
        made_there = device_asked is not None and torch.device(device_asked) == PRETEND
        if short in TO_HOST:
            return out
        if short == "__iter__" and self.on(args[0]):
            parts = list(out)
            for t in parts:
                self.on_device[t] = True
            return iter(parts)
        if made_there or any(self.on(t) for t in tensors):
            in_place = {id(t) for t in tensors}
            for t in _tensors(out, []):
                if id(t) not in in_place or made_there:
                    self.on_device[t] = True
        return out


def audit_findings(modules, call) -> "DeviceAudit":
    """Run ``call()`` under a :class:`DeviceAudit` of ``modules``; the audit, with its findings."""
    audit = DeviceAudit(*modules)
    with audit:
        call()
    return audit


def describe(findings: List[str]) -> str:
    return "\n".join(findings)


__all__ = ["DeviceAudit", "PRETEND", "audit_findings", "describe", "Any"]
