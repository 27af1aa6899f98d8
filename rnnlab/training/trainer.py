"""The trainer every rnnlab model shares.

It owns the update rule (optimizer, schedule, clipping), the clock (epochs, step and time limits,
validation, early stopping), and the record (checkpoints, the best weights, metrics, the loss
curve, the progress bar). What a batch is and what the loss is belongs to a *task*:

    task.num_batches(epoch) -> int           updates in an epoch
    task.start_epoch(epoch)                  e.g. reset the state carried across windows
    task.train_step(model, epoch, i)         -> (objective to backpropagate, loss sum, tokens)
    task.evaluate(model, split) -> dict      at least {"loss": ...}; None if the split is empty
    task.metrics(loss_sum, count) -> dict    the task's figures for a mean loss
    task.carry() / task.load_carry(tensors)  state that crosses updates (saved in checkpoints)

A run is deterministic given its seed: the random generator, the carried state and every counter
are in the checkpoint, so a resumed run continues exactly as the uninterrupted one. A run with a
time budget (``max_time``) is the exception: the clock decides where it stops and, under the
cosine schedule, its learning rates (the schedule spans the budget, optim.py).

Started by ``torchrun``, the same trainer runs on every process under DistributedDataParallel
(:mod:`rnnlab.training.distributed`): the batch split across processes, the records and the run
directory kept by rank 0.
"""
from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Dict, Optional

import torch

from ..errors import CheckpointError, ConfigError, RnnlabError
from . import distributed
from .averaging import WeightAverage
from .checkpoint import load_weights, read_checkpoint, save_checkpoint, unflatten_optimizer
from .config import TrainConfig
from .metrics import MetricsLog, load_plotting, release_free_memory, resident_mib
from .optim import LRSchedule, clip_gradients, make_optimizer, set_lr
from .device import model_device
from .precision import autocast, check_precision, grad_scaler

CHECKPOINT = "checkpoint.safetensors"
#: process r of a distributed run seeds its generator (dropout) with seed + r * this
RANK_SEED_STRIDE = 1_000_003
#: stop reasons one process may see before the others (distributed runs agree on them)
LOCAL_STOP_REASONS = ("interrupted", "max_time")
BEST = "model.safetensors"
PLOT_EVERY = 30.0  # seconds between redraws of loss.png during training (and once at the end)
#: the trainer's clock, in seconds: the time budget, the schedule that spans it, the progress bar
clock = time.perf_counter


class TrainingStopped(RnnlabError):
    """Training could not go on (e.g. the loss stayed non-finite); the last checkpoint is intact."""


@contextlib.contextmanager
def deterministic_algorithms(on: bool):
    """torch's deterministic mode (and rnnlab's fixed choice of matrix kernel) inside the block.
    Fresh memory is not filled with NaN (a debugging aid of that mode that costs a pass over every
    new tensor and changes no result)."""
    import torch.utils.deterministic as det
    before = (torch.are_deterministic_algorithms_enabled(),
              torch.is_deterministic_algorithms_warn_only_enabled(), det.fill_uninitialized_memory)
    torch.use_deterministic_algorithms(on, warn_only=True)
    det.fill_uninitialized_memory = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
        det.fill_uninitialized_memory = before[2]


@contextlib.contextmanager
def cpu_threads(n: int):
    """torch's CPU threads at ``n`` inside the block (0: as they are), as they were after it."""
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if n:
            torch.set_num_threads(before)


class Trainer:
    """Trains ``model`` on ``task`` under ``config``; records into ``run_dir`` if given."""

    def __init__(self, model: torch.nn.Module, task, config: TrainConfig, run_dir=None,
                 say: Callable[[str], None] = None):
        self.model, self.task, self.config = model, task, config.check()
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.world = distributed.current()
        self.writes = self.run_dir is not None and self.world.main  # rank 0 keeps the records
        self.say = (say or say_above_bar) if self.world.main else (lambda message: None)
        torch.manual_seed(config.seed + RANK_SEED_STRIDE * self.world.rank)
        self.device = model_device(model)  # the caller put the model there (rnnlab.api.train)
        check_precision(config.precision, self.device)
        self.scaler = grad_scaler(config.precision, self.device)
        self.step_module = distributed.wrap(model, task, self.world)
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = make_optimizer(config.optimizer, self.params, config.lr, config.momentum,
                                        config.weight_decay)
        self.schedule = LRSchedule(config.schedule, config.lr, self.total_steps(),
                                   config.decay_start, config.decay_factor, config.patience,
                                   config.min_lr, config.max_time)
        self.state = {"epoch": 0, "position": 0, "step": 0, "tokens": 0, "elapsed": 0.0,
                      "best_loss": None, "best_step": None, "bad_validations": 0,
                      "nonfinite_in_row": 0, "nonfinite_total": 0, "lr_scale": 1.0,
                      "stop_reason": None, "world_size": self.world.size}
        self.average = WeightAverage(model, config.ema) if config.ema else None
        self.metrics = MetricsLog(self.run_dir / "metrics.jsonl", config.tensorboard) \
            if self.writes else None
        if self.writes:
            load_plotting()  # loss.png is drawn during the run
        self._stop_request: Optional[str] = None
        self._plotted = -math.inf

    # ----------------------------------------------------------------- limits
    def total_steps(self) -> int:
        """Updates the run will make at most by its epochs and ``max_steps`` (0: no such limit;
        the time budget is the schedule's other span)."""
        c = self.config
        per_epoch = [self.task.num_batches(e) for e in range(c.epochs)] if c.epochs else []
        total = sum(per_epoch) if c.epochs else c.max_steps
        return min(total, c.max_steps) if c.max_steps else total

    def expected_steps(self, total: int) -> int:
        """Updates the run will have made when it ends (the progress bar's total): ``total``, or
        when the time budget comes first, as many as fit in it at the pace so far (0: unknown).
        The bar's fraction is then the schedule's progress."""
        c, st = self.config, self.state
        if not (c.max_time and st["step"] and st["elapsed"] > 0):
            return total
        fit = max(st["step"], math.ceil(st["step"] * c.max_time / st["elapsed"]))
        return min(total, fit) if total else fit

    # ------------------------------------------------------------ checkpoints
    def save(self) -> None:
        """Write the training state (every process takes part: rank 0 collects the others' random
        and carried state and writes one file)."""
        if self.run_dir is None:
            return
        carry, rng = self.task.carry(), {"torch": torch.get_rng_state()}
        if self.device.type == "cuda" and not self.world.distributed:  # dropout's generator there
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        if self.world.distributed:
            parts = distributed.gather((carry, rng["torch"]), self.world)
            carry = {f"rank{r}/{k}": v for r, (c, _) in enumerate(parts) for k, v in c.items()}
            rng = {f"torch.rank{r}": g for r, (_, g) in enumerate(parts)}
        if not self.writes:
            return
        trainer = dict(self.state, schedule=self.schedule.state_dict())
        if self.scaler is not None:
            trainer["scaler"] = self.scaler.state_dict()
        save_checkpoint(self.run_dir / CHECKPOINT, self.model, self.optimizer, trainer, carry,
                        average=self.average.state_dict() if self.average else None, rng=rng)
        release_free_memory()  # the copies the file was written from

    def resume(self, path=None) -> None:
        """Continue from a checkpoint (default: the run directory's). A damaged training record is a
        CheckpointError naming the file; nothing of the trainer changes until every part is read."""
        path = Path(path) if path is not None else self.run_dir / CHECKPOINT
        groups, meta = read_checkpoint(path)
        if "trainer" not in meta or "optimizer" not in meta:
            raise RnnlabError(f"{path}: holds weights only, not a training state to resume")
        trainer = self._checked_record(meta["trainer"], path)
        if trainer["world_size"] != self.world.size:
            raise ConfigError(f"{path}: a run trained on {trainer['world_size']} process(es) resumes "
                              f"on as many; this is {self.world.size}")
        carry, rng = groups["carry"], groups["rng"].get("torch")
        if self.world.distributed:
            prefix = f"rank{self.world.rank}/"
            carry = {k[len(prefix):]: v for k, v in carry.items() if k.startswith(prefix)}
            rng = groups["rng"].get(f"torch.rank{self.world.rank}")
        if rng is None or rng.dtype != torch.uint8 or rng.dim() != 1:
            raise CheckpointError(f"{path}: expected the random state of process {self.world.rank} "
                                  f"(a 1-D uint8 tensor); found {'none' if rng is None else tuple(rng.shape)}")
        load_weights(self.model, groups["model"], path)
        if self.average:
            self.average.load_state_dict(groups["average"], str(path))
        try:
            self.optimizer.load_state_dict(unflatten_optimizer(groups["optim"], meta["optimizer"]))
            notice = self.schedule.load_state_dict(trainer.pop("schedule"))
            scaler = trainer.pop("scaler", None)
            if self.scaler is not None and scaler is not None:
                self.scaler.load_state_dict(scaler)
            torch.set_rng_state(rng)
            cuda_rng = groups["rng"].get("cuda")
            if cuda_rng is not None and self.device.type == "cuda" and not self.world.distributed:
                torch.cuda.set_rng_state(cuda_rng, self.device)  # (a CPU resume starts CUDA's afresh)
            self.task.load_carry(carry)
        except (ValueError, KeyError, TypeError, IndexError, AttributeError, RuntimeError) as e:
            raise CheckpointError(f"{path}: the optimizer, schedule, random or carried state does not "
                                  f"fit this run ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None
        if notice:
            self.say(notice)
        self.state.update(trainer)
        self.state["stop_reason"] = None
        if self.metrics:
            self.metrics.truncate_after(self.state["step"])

    def _checked_record(self, record, path) -> dict:
        """The checkpoint's trainer record, each counter of the kind this trainer keeps."""
        if not isinstance(record, dict) or not isinstance(record.get("schedule"), dict):
            raise CheckpointError(f"{path}: expected a trainer record with a schedule; found "
                                  f"{type(record).__name__}")
        record = dict(record)
        record.setdefault("world_size", 1)
        for key, now in self.state.items():
            value = record.get(key, now) if key in ("stop_reason", "world_size") else record.get(key, KeyError)
            if value is KeyError:
                raise CheckpointError(f"{path}: the trainer record lacks {key!r}")
            numeric = isinstance(now, (int, float)) and not isinstance(now, bool)
            ok = (value is None or isinstance(value, (int, float, str))) if now is None else \
                (isinstance(value, (int, float)) and not isinstance(value, bool)
                 and math.isfinite(value) and value >= 0) if numeric else isinstance(value, type(now))
            if not ok:
                raise CheckpointError(f"{path}: the trainer record's {key!r} is {value!r}; expected "
                                      f"{'a number >= 0' if numeric else type(now).__name__}")
            if isinstance(now, int) and numeric and value != int(value):
                raise CheckpointError(f"{path}: the trainer record's {key!r} is {value!r}; expected a whole number")
        return record

    def start_over(self) -> None:
        """Train a run that saved no checkpoint from its first update (its records dropped)."""
        if self.metrics:
            self.metrics.truncate_after(0)

    # --------------------------------------------------------------- records
    def record(self, **rec) -> None:
        if self.metrics:
            self.metrics.append(rec)

    def validate(self) -> Optional[Dict[str, float]]:
        """Validation loss; keeps the best weights; counts validations without improvement."""
        st = self.state
        with self.evaluated_weights():  # on rank 0; every process gets its figures
            result = self.task.evaluate(self.model, "valid") if self.world.main else None
            result = distributed.broadcast(result, self.world)
            if result is None:
                return None
            loss = selection_score(self.task, result)
            improved = st["best_loss"] is None or loss < st["best_loss"]
            if improved and self.writes:
                save_checkpoint(self.run_dir / BEST, self.model, kind="rnnlab-weights")
        self.record(split="valid", step=st["step"], epoch=st["epoch"], **result)
        self.schedule.validated(loss)
        if improved:
            st["best_loss"], st["best_step"], st["bad_validations"] = loss, st["step"], 0
        else:
            st["bad_validations"] += 1
            if self.config.early_stopping and st["bad_validations"] >= self.config.early_stopping:
                self._stop_request = "early stopping"
        if self.config.target_loss and loss <= self.config.target_loss:
            self._stop_request = self._stop_request or "target_loss"
        release_free_memory()  # what the evaluation allocated and freed
        shown = ", ".join(f"{k} {v:.4g}" for k, v in result.items())
        self.say(f"step {st['step']}  valid: {shown}"
                 f"{'  (best)' if st['best_step'] == st['step'] else ''}")
        self.save()
        if self.writes:
            if time.perf_counter() - self._plotted > PLOT_EVERY:
                self.metrics.plot(self.run_dir / "loss.png")
                self._plotted = time.perf_counter()
        return result

    def evaluated_weights(self):
        """A context in which the model holds the weights that are evaluated and kept as the
        best: the moving average with ``ema``, else its own."""
        return self.average.applied() if self.average else contextlib.nullcontext()

    # ------------------------------------------------------------------ loop
    def _update(self, epoch: int, index: int):
        """One update; returns (loss sum, tokens) or None when it was skipped as non-finite."""
        c, st = self.config, self.state
        self.model.train()
        with autocast(c.precision, self.device):  # fp32: nothing (precision.py)
            objective, loss_sum, count = self.step_module(epoch, index)
        if self.world.distributed:  # the mean over the global batch (distributed.py)
            total_loss, total_count = distributed.all_sum([float(loss_sum), count], self.world)
            objective = objective * (count * self.world.size / total_count if total_count else 0.0)
            loss_sum, count = total_loss, int(total_count)
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:  # fp16: the scaled objective, the gradients unscaled for clipping
            self.scaler.scale(objective).backward()
            self.scaler.unscale_(self.optimizer)
        else:
            objective.backward()
        norm = clip_gradients(self.params, c.clip_value, c.clip_norm)
        if self.scaler is not None and math.isfinite(float(loss_sum)) and not self._grads_finite(norm):
            self.scaler.update()  # an overflow of the scaled gradient: a smaller scale, no update
            return None
        if not math.isfinite(float(loss_sum)) or (norm is not None and not math.isfinite(norm)):
            st["nonfinite_in_row"] += 1
            st["nonfinite_total"] += 1
            st["lr_scale"] *= 0.5
            self.say(f"step {st['step'] + 1}: non-finite loss or gradient; update skipped, "
                     f"learning rate halved")
            self.record(split="train", step=st["step"], event="nonfinite", lr_scale=st["lr_scale"])
            if st["nonfinite_in_row"] >= c.max_nonfinite:
                raise TrainingStopped(f"the loss or gradient was non-finite {st['nonfinite_in_row']} "
                                      f"updates in a row (step {st['step'] + 1}); lower the learning "
                                      f"rate or clip harder; the last checkpoint is intact")
            return None
        st["nonfinite_in_row"] = 0
        set_lr(self.optimizer, self.schedule.lr(st["step"], st["elapsed"]) * st["lr_scale"])
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        if self.average:
            self.average.update(st["step"])
        return float(loss_sum), count

    def _grads_finite(self, norm: Optional[float]) -> bool:
        if norm is not None:
            return math.isfinite(norm)
        return all(bool(torch.isfinite(p.grad).all()) for p in self.params if p.grad is not None)

    def _on_sigint(self, signum, frame):
        if self._stop_request == "interrupted":
            raise KeyboardInterrupt
        self._stop_request = "interrupted"
        self.say("interrupted: saving a checkpoint after this update (Ctrl-C again to quit at once)")

    def fit(self) -> dict:
        """Train until a limit is reached; returns the run's summary."""
        c = self.config
        handler_set = threading.current_thread() is threading.main_thread()
        old_handler = signal.signal(signal.SIGINT, self._on_sigint) if handler_set else None
        threads = c.threads or (max(1, (os.cpu_count() or 1) // self.world.local_size)
                                if self.world.distributed else 0)  # (one machine's processes share its cores)
        with cpu_threads(threads):
            try:
                with deterministic_algorithms(c.deterministic), logs_above_bar():
                    self._loop()
            finally:
                if handler_set:
                    signal.signal(signal.SIGINT, old_handler)
            return self.finish()

    def _loop(self) -> None:
        from tqdm import tqdm
        c, st = self.config, self.state
        total = self.total_steps()
        interactive = sys.stderr.isatty()
        bar = tqdm(total=self.expected_steps(total) or None, initial=st["step"],
                   disable=not (c.progress and self.world.main), file=sys.stderr,
                   unit="step", dynamic_ncols=True, leave=True, mininterval=0.1 if interactive else 30,
                   bar_format="{desc} {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]")
        t_start, elapsed0 = clock(), st["elapsed"]
        self._start = (st["step"], st["tokens"])
        window_loss, window_count = 0.0, 0
        try:
            while not st["stop_reason"]:
                epoch = st["epoch"]
                if c.epochs and epoch >= c.epochs:
                    st["stop_reason"] = "epochs"
                    break
                n = self.task.num_batches(epoch)
                if st["position"] == 0:
                    self.task.start_epoch(epoch)
                bar.set_description(f"epoch {epoch + 1}" + (f"/{c.epochs}" if c.epochs else ""))
                while st["position"] < n:
                    out = self._update(epoch, st["position"])
                    st["position"] += 1
                    st["step"] += 1
                    st["elapsed"] = elapsed0 + clock() - t_start
                    if out is not None:
                        window_loss += out[0]
                        window_count += out[1]
                        st["tokens"] += out[1]
                    bar.update(1)
                    if st["step"] % c.log_every == 0 or st["position"] == n:
                        self._log_train(bar, window_loss, window_count, t_start, total)
                        window_loss, window_count = 0.0, 0
                    if c.validate_every and st["step"] % c.validate_every == 0:
                        self.validate()
                    elif c.checkpoint_every and st["step"] % c.checkpoint_every == 0:
                        self.save()
                    if c.max_steps and st["step"] >= c.max_steps:
                        self._stop_request = self._stop_request or "max_steps"
                    if c.max_time and st["elapsed"] >= c.max_time:
                        self._stop_request = self._stop_request or "max_time"
                    if self.world.distributed:
                        self._agree()
                    if self._stop_request:
                        break
                if st["position"] >= n:
                    st["epoch"], st["position"] = epoch + 1, 0
                    self.schedule.end_epoch(epoch)
                    if not c.validate_every:
                        self.validate()
                if self._stop_request:
                    st["stop_reason"] = self._stop_request
        finally:
            bar.close()
        self.save()

    def _agree(self) -> None:
        """Stop every process at the same update: a Ctrl-C or the time limit seen by any of them
        counts for all (the other reasons follow from figures all processes share). And give all
        one elapsed time, their mean, from which the next update's rate follows (a schedule that
        spans the time budget sets the same rate on every process)."""
        local = [float(self._stop_request == reason) for reason in LOCAL_STOP_REASONS]
        *seen, elapsed = distributed.all_sum(local + [self.state["elapsed"]], self.world)
        self.state["elapsed"] = elapsed / self.world.size
        for reason, flag in zip(LOCAL_STOP_REASONS, seen):
            if flag and not self._stop_request:
                self._stop_request = reason

    def _log_train(self, bar, loss_sum: float, count: int, t_start: float, total: int):
        st = self.state
        step0, tokens0 = self._start
        rate = (st["tokens"] - tokens0) / max(clock() - t_start, 1e-9)
        rec = {"split": "train", "step": st["step"], "epoch": st["epoch"],
               **self.task.metrics(loss_sum, count), "lr": self.optimizer.param_groups[0]["lr"],
               "tokens_per_s": rate, "elapsed": st["elapsed"], "rss_mib": resident_mib()}
        self.record(**rec)
        steps_rate = (st["step"] - step0) / max(clock() - t_start, 1e-9)
        left = [(total - st["step"]) / steps_rate] if total and steps_rate > 0 else []
        if self.config.max_time:
            left.append(self.config.max_time - st["elapsed"])
        left_s = f", {format_seconds(min(left))} left" if left else ""
        bar.total = self.expected_steps(total) or None  # drawn with the postfix, at the next update
        bar.set_postfix_str(f"loss {rec['loss']:.3f}, {rate / 1000:.1f}k tok/s{left_s}", refresh=False)

    def finish(self) -> dict:
        """Test loss of the best weights; the summary (also written to summary.json)."""
        st = self.state
        if self.average:                      # the trained model is the average from here on
            self.average.copy_to_model()
        distributed.barrier(self.world)  # rank 0's last writes are done
        if self.run_dir and st["best_step"] is not None and (self.run_dir / BEST).exists():
            groups, _ = read_checkpoint(self.run_dir / BEST)
            load_weights(self.model, groups["model"], self.run_dir / BEST)
        elif self.writes:
            save_checkpoint(self.run_dir / BEST, self.model, kind="rnnlab-weights")
        summary = {"stop_reason": st["stop_reason"], "steps": st["step"], "epochs": st["epoch"],
                   "tokens": st["tokens"], "train_seconds": st["elapsed"],
                   "best_step": st["best_step"], "nonfinite_updates": st["nonfinite_total"]}
        if st["stop_reason"] != "interrupted" and self.world.main:
            for split in ("valid", "test"):
                result = self.task.evaluate(self.model, split)
                if result is not None:
                    summary[split] = result
                    self.record(split=split + "_final", step=st["step"], **result)
        if self.writes:
            from .atomic import write_json
            write_json(self.run_dir / "summary.json", summary)
            self.metrics.plot(self.run_dir / "loss.png")
        return summary


def selection_score(task, result: Dict[str, float]) -> float:
    """The figure that picks the best weights, lower is better: the validation loss, or the
    metric a task names in ``selection = (name, "max" | "min")`` (e.g. accuracy, BLEU)."""
    name, direction = getattr(task, "selection", ("loss", "min"))
    value = float(result[name])
    return -value if direction == "max" else value


def say_above_bar(message: str) -> None:
    """A line on stderr, printed above the progress bar rather than through it."""
    from tqdm import tqdm
    tqdm.write(message, file=sys.stderr)


class _AboveBar(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        say_above_bar(self.format(record))


@contextlib.contextmanager
def logs_above_bar():
    """rnnlab's warnings inside the block printed above the progress bar, where no handler of
    the program's prints them (Python's last resort would print them through the bar's line)."""
    logger = logging.getLogger("rnnlab")
    if logger.handlers or logging.getLogger().handlers:
        yield
        return
    handler = _AboveBar(logging.WARNING)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


def format_seconds(s: float) -> str:
    s = max(0, int(s))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"
