"""The per-step store of the bptt engine: stacked values equal torch.stack, views where free."""
import torch

from rnnlab.engines.steps import StepStack, evenly_spaced_view


def test_rows_of_one_buffer_stack_without_a_copy():
    xw = torch.randn(5, 3, 8)
    steps = [(xw[t][:, 2:6], torch.randn(3)) for t in range(5)]
    want = [torch.stack([s[k] for s in steps]) for k in range(2)]
    stack = StepStack(steps)
    assert stack[0].data_ptr() == xw[0, :, 2].data_ptr()  # a view of xw
    for k in range(2):
        torch.testing.assert_close(stack[k], want[k])
    assert all(s[0] is None and s[1] is None for s in steps)  # the steps were let go


def test_tensors_from_separate_allocations_are_not_viewed():
    assert evenly_spaced_view([torch.randn(2), torch.randn(2), torch.randn(2)]) is None
    buf = torch.randn(6, 2)
    assert evenly_spaced_view([buf[0], buf[2], buf[3]]) is None  # uneven
    torch.testing.assert_close(evenly_spaced_view([buf[0], buf[2], buf[4]]), buf[::2])
