"""rnnlab layers against torch.nn layers loaded with the same state dict (float32, within 1e-5)."""
from __future__ import annotations

import torch
from torch.nn.utils.rnn import pack_padded_sequence

TOL = dict(rtol=1e-5, atol=1e-5)


def _grads(module, x, hx, packed, lengths, batch_first):
    """Run ``module``; return outputs, final states and grads w.r.t. input, hx and parameters."""
    inp = pack_padded_sequence(x, lengths, batch_first=batch_first, enforce_sorted=False) if packed else x
    out, h_n = module(inp, hx)
    if packed:
        out = out.data  # the same packed layout for both modules
    finals = h_n if isinstance(h_n, tuple) else (h_n,)
    loss = (out * torch.linspace(-1, 1, out.shape[-1])).sin().sum()
    for k, h in enumerate(finals):
        loss = loss + ((k + 1) * h).tanh().sum()
    hx_t = hx if isinstance(hx, tuple) else (hx,)
    grads = torch.autograd.grad(loss, [x, *hx_t, *module.parameters()])
    return [out, *finals], grads


def assert_matches_torch(ours, theirs, *, batch_first, packed, T=6, B=4):
    """Same state dict, same input: equal outputs, final states and every gradient."""
    ours.load_state_dict(theirs.state_dict())
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    shape = (B, T, theirs.input_size) if batch_first else (T, B, theirs.input_size)
    x = torch.randn(shape, requires_grad=True)
    D = 2 if theirs.bidirectional else 1
    hshape = (theirs.num_layers * D, B, theirs.hidden_size)
    hx = torch.randn(hshape, requires_grad=True)
    if isinstance(theirs, torch.nn.LSTM):
        hx = (hx, torch.randn(hshape, requires_grad=True))
    lengths = torch.tensor([T, 2, T - 1, 1][:B])
    v1, g1 = _grads(theirs, x, hx, packed, lengths, batch_first)
    v2, g2 = _grads(ours, x, hx, packed, lengths, batch_first)
    for a, b in zip(v1, v2):
        torch.testing.assert_close(b, a, **TOL)
    names = ["input", "hx", "cx"][:1 + (2 if isinstance(hx, tuple) else 1)] + \
        [n for n, _ in theirs.named_parameters()]
    for name, a, b in zip(names, g1, g2):
        torch.testing.assert_close(b, a, **TOL, msg=lambda m: f"grad {name}: {m}")
