"""Training on many processes: torch's DistributedDataParallel, started by ``torchrun``.

``torchrun --nproc_per_node N -m rnnlab train ...`` starts N copies of the command; each reads the
rank, world size and rendezvous address torchrun puts in its environment (``RANK``,
``WORLD_SIZE``, ``LOCAL_WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``) and joins one process group
(gloo on CPU, nccl on GPU). Then:

- every process builds the same model from the same seed (DDP also broadcasts rank 0's weights);
- each update's batch is split across the processes (:func:`shard`): a language model's B streams
  into N groups of B/N streams, a batch of examples into N contiguous parts;
- the objective is made the mean over the *global* batch: with local loss sum L_r over c_r
  predictions and objective L_r / (k c_r),

      objective_r' = objective_r * N c_r / sum_r c_r,

  so that DDP's average of the N gradients, (1/N) sum_r grad objective_r', equals the gradient
  of sum_r L_r / (k sum_r c_r), what one process with the whole batch computes;
- losses and counts are summed across processes for the records; validation and test run on
  rank 0 and their figures are sent to all, so every process takes the same decisions (best
  weights, schedule, early stopping);
- rank 0 alone writes the run directory; the checkpoint holds every rank's random state and
  carried state, so a run resumes exactly on the same number of processes.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, List, Optional, Sequence

import torch

from ..errors import ConfigError


@dataclass(frozen=True)
class World:
    """This process's place among the training processes."""
    rank: int = 0
    size: int = 1
    local_size: int = 1

    @property
    def main(self) -> bool:
        """Whether this process writes the run directory and speaks to the user."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"environment variable {name} must be a whole number, got {value!r}") from None


def current() -> World:
    """The world this process belongs to: from the initialised process group, else a single one."""
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size(),
                     _env_int("LOCAL_WORLD_SIZE", dist.get_world_size()))
    return World()


def init_from_environment(device: Optional[torch.device] = None) -> World:
    """Join the process group torchrun describes in the environment (once); a single process when
    ``WORLD_SIZE`` is absent or 1. The backend follows where the model will live: nccl for a
    model on a CUDA device, gloo otherwise (a CPU run on a machine with GPUs included)."""
    import torch.distributed as dist
    size = _env_int("WORLD_SIZE", 1)
    if size <= 1:
        return World()
    if not dist.is_available():
        raise ConfigError("WORLD_SIZE > 1 asks for distributed training, but this torch build has "
                          "no torch.distributed")
    if not dist.is_initialized():
        backend = backend_for(device)
        if backend == "nccl":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend)
    return current()


def backend_for(device: Optional[torch.device]) -> str:
    """The process group's backend for a model on ``device``: nccl on CUDA, gloo otherwise."""
    return "nccl" if device is not None and device.type == "cuda" else "gloo"


def shutdown() -> None:
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def shard(items: Sequence[Any], world: World = None) -> Sequence[Any]:
    """This rank's contiguous part of ``items`` (all of them in a single process). Parts differ in
    size by at most one; a rank may get none when there are fewer items than ranks."""
    world = world or current()
    if not world.distributed:
        return items
    n = len(items)
    return items[world.rank * n // world.size:(world.rank + 1) * n // world.size]


def check_divisible(name: str, value: int, world: World = None) -> None:
    """A ConfigError unless ``value`` splits evenly across the processes."""
    world = world or current()
    if value % world.size:
        raise ConfigError(f"{name} {value} must be a multiple of the {world.size} training processes")


def all_sum(values: Sequence[float], world: World) -> List[float]:
    """The sum of each value over the processes (float64), in one collective."""
    if not world.distributed:
        return list(values)
    import torch.distributed as dist
    t = torch.tensor(list(values), dtype=torch.float64)
    dist.all_reduce(t)
    return t.tolist()


def broadcast(obj: Any, world: World) -> Any:
    """Rank 0's ``obj`` on every rank (JSON-like objects)."""
    if not world.distributed:
        return obj
    import torch.distributed as dist
    box = [obj if world.main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather(obj: Any, world: World) -> List[Any]:
    """Every rank's ``obj``, in rank order, on every rank."""
    if not world.distributed:
        return [obj]
    import torch.distributed as dist
    out: List[Any] = [None] * world.size
    dist.all_gather_object(out, obj)
    return out


def barrier(world: World) -> None:
    if world.distributed:
        import torch.distributed as dist
        dist.barrier()


class TaskStep(torch.nn.Module):
    """The model and the task's training step as one module, so that DDP sees the step as the
    module's forward: ``forward(epoch, index) -> (objective, loss sum, count)``."""

    def __init__(self, model: torch.nn.Module, task):
        super().__init__()
        self.model = model
        self.task = task

    def forward(self, epoch: int, index: int):
        return self.task.train_step(self.model, epoch, index)


def wrap(model: torch.nn.Module, task, world: World):
    """The callable an update runs: the task's step, under DDP when there are several processes."""
    step = TaskStep(model, task)
    if not world.distributed:
        return step
    from torch.nn.parallel import DistributedDataParallel
    device_ids = [torch.cuda.current_device()] if next(model.parameters()).is_cuda else None
    return DistributedDataParallel(step, device_ids=device_ids)
