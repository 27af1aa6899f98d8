"""The compiled engine's sequences come from a cache of freed blocks (``csrc/pool.h``): a call
gives the same values and gradients, bit for bit, whether its memory is cached or torch's; a
second call of the same shape takes the first's blocks (the cache does not grow); the limit
holds; ``empty_cache`` hands everything back; calls from two threads at once stay correct.
"""
import os
import threading

import pytest
import torch

import rnnlab
from rnnlab.engines import compiled

pytestmark = pytest.mark.requires_compiled  # skipped where the C++ cannot be built (conftest.py)

LIMIT = 1 << 30


@pytest.fixture
def pool():
    """The engine's module with the cache emptied and its limit 1 GiB; emptied and the limit as
    it was after."""
    ops = compiled._ops()
    ops.set_onednn("never")  # (one kernel: the comparisons are bit for bit)
    default = ops.set_pool_limit(LIMIT)
    compiled.empty_cache()
    yield ops
    ops.set_pool_limit(default)
    ops.set_onednn("measure")
    compiled.empty_cache()


def layer_and_input(**options):
    torch.manual_seed(0)
    layer = rnnlab.LSTM(8, 16, engine="compiled", num_layers=2, **options)
    return layer, torch.randn(12, 3, 8, requires_grad=True)


def training_call(layer, x):
    out, _ = layer(x)
    grads = torch.autograd.grad((out * out).sum(), [x, *layer.parameters()])
    return [out.detach(), *grads]


@pytest.mark.parametrize("options", [{}, {"layer_norm": True}, {"zoneout": 0.2}, {"peephole": "full"}])
def test_cached_blocks_give_what_torchs_allocator_gives(pool, options):
    layer, x = layer_and_input(**options)
    pool.set_pool_limit(0)
    assert compiled.empty_cache() == 0
    torch.manual_seed(1)
    reference = training_call(layer, x)
    assert compiled.empty_cache() == 0  # (limit 0: nothing kept)
    pool.set_pool_limit(LIMIT)
    for _ in range(3):  # the first call fills the cache, the others take from it
        torch.manual_seed(1)
        got = training_call(layer, x)
        for a, b in zip(reference, got):
            assert torch.equal(a, b)


def test_a_second_call_takes_the_first_calls_blocks(pool):
    layer, x = layer_and_input(layer_norm=True)
    with torch.no_grad():
        layer(x)
    kept = compiled.empty_cache()
    assert kept > 12 * 3 * 16 * 4 * 4  # at least the gates' sequence of one layer
    with torch.no_grad():
        layer(x)
        layer(x)
    assert compiled.empty_cache() == kept  # the same blocks again, none added
    assert compiled.empty_cache() == 0


def test_the_limit_bounds_what_is_kept(pool):
    layer, x = layer_and_input(layer_norm=True)
    with torch.no_grad():
        layer(x)
    everything = compiled.empty_cache()
    pool.set_pool_limit(everything // 2)
    with torch.no_grad():
        layer(x)
    assert 0 < compiled.empty_cache() <= everything // 2


def test_two_threads_share_the_cache(pool):
    layer, x = layer_and_input(layer_norm=True, zoneout=0.1)
    layer.eval()  # (zoneout's masks drawn by two threads at once would differ from a lone call's)
    alone = training_call(layer, x)
    results, errors = {}, []

    def work(k):
        try:
            for _ in range(5):
                results[k] = training_call(layer, x)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for k in range(2):
        for a, b in zip(alone, results[k]):
            assert torch.allclose(a, b, rtol=0, atol=0)


def test_the_default_limit_is_an_eighth_of_the_memory_at_most_512_mib():
    ops = compiled._ops()
    default = ops.set_pool_limit(0)
    ops.set_pool_limit(default)
    memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert default == min(512 << 20, memory // 8)


def test_a_shorter_batch_takes_a_longer_batchs_blocks(pool):
    torch.manual_seed(0)
    layer = rnnlab.LSTM(8, 16, engine="compiled", num_layers=2, layer_norm=True)
    with torch.no_grad():
        layer(torch.randn(12, 3, 8))
        kept = compiled.empty_cache()
        layer(torch.randn(12, 3, 8))
        layer(torch.randn(10, 3, 8))  # (its sequences a class or two smaller than T = 12's)
    assert compiled.empty_cache() == kept  # T = 12's blocks again, none added
