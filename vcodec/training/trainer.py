"""A small, resumable training loop shared by every stage.

Operations a long CPU run needs: warm-up then cosine learning rate, gradient
clipping, an exponential moving average of the weights (what gets exported),
checkpoints every few minutes written atomically with the full state (model,
EMA, optimizer, step, elapsed time), a CSV log and a tqdm bar. Batches are a pure
function of the step number, so stop-and-resume reproduces an uninterrupted run.
"""

from __future__ import annotations

import csv
import math
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm


@dataclass
class Schedule:
    lr: float = 5e-4
    warmup: int = 300
    total_steps: int = 100_000
    final_lr_ratio: float = 0.05

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return self.lr * (step + 1) / self.warmup
        t = min(1.0, (step - self.warmup) / max(1, self.total_steps - self.warmup))
        ratio = self.final_lr_ratio + (1 - self.final_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t))
        return self.lr * ratio


def atomic_save(obj: object, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def param_groups(model: nn.Module, lr_scale: dict[str, float]) -> list[dict]:
    """Trainable parameters grouped by learning-rate scale: `lr_scale` maps a name prefix to a multiplier of
    the schedule's rate, so a part of a model (a pre-trained flow network, say) can learn faster or slower
    than the rest; parameters under no prefix keep scale 1."""
    groups: dict[float, list[nn.Parameter]] = {}
    unused = set(lr_scale)
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        prefix = next((p for p in lr_scale if name.startswith(p)), None)
        unused.discard(prefix)
        groups.setdefault(lr_scale[prefix] if prefix else 1.0, []).append(param)
    if unused:
        raise ValueError(f"lr_scale: no trainable parameter name starts with {', '.join(sorted(unused))}")
    return [{"params": params, "scale": scale} for scale, params in groups.items()]


class Trainer:
    """Runs `step_fn(step) -> (loss, metrics)` with checkpointing and logging."""

    def __init__(self, model: nn.Module, run_dir: str | os.PathLike, schedule: Schedule,
                 clip: float = 1.0, ema_decay: float = 0.999, checkpoint_minutes: float = 10.0,
                 rank: int = 0, world: int = 1, lr_scale: dict[str, float] | None = None,
                 find_unused: bool = False, module: nn.Module | None = None):
        self.model = model
        self.rank, self.world = rank, world
        # Under torchrun, forward through DDP so gradients are averaged across replicas. `module`: what a step
        # calls, when not the model itself (a loss module holding it); `find_unused`: some steps leave
        # parameters out of the loss (block-motion P-frames skip the motion codec).
        module = model if module is None else module
        self.forward_module = DistributedDataParallel(module, find_unused_parameters=find_unused) if world > 1 \
            else module
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.schedule = schedule
        self.clip = clip
        self.ema_decay = ema_decay
        self.checkpoint_seconds = checkpoint_minutes * 60
        self.optimizer = torch.optim.Adam(param_groups(model, lr_scale or {}), lr=schedule.lr)
        self.ema = {k: v.detach().clone() for k, v in model.state_dict().items()}
        self.step = 0
        self.elapsed = 0.0
        self._stop = False

    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / "checkpoint.pt"

    def state(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "ema": self.ema,
            "optimizer": self.optimizer.state_dict(),
            "step": self.step,
            "elapsed": self.elapsed,
            "rng": torch.get_rng_state(),
        }

    def save(self) -> None:
        if self.rank == 0:
            atomic_save(self.state(), self.checkpoint_path)

    def resume(self) -> bool:
        if not self.checkpoint_path.exists():
            return False
        state = torch.load(self.checkpoint_path, map_location="cpu", weights_only=True)
        self.model.load_state_dict(state["model"])
        self.ema = state["ema"]
        scales = [group["scale"] for group in self.optimizer.param_groups]
        self.optimizer.load_state_dict(state["optimizer"])  # replaces the groups' settings with the saved ones
        for group, scale in zip(self.optimizer.param_groups, scales):
            group["scale"] = scale
        self.step, self.elapsed = int(state["step"]), float(state["elapsed"])
        if "rng" in state and self.world == 1:  # replicas keep their own noise streams
            torch.set_rng_state(state["rng"])
        return True

    def init_from(self, weights: dict[str, torch.Tensor]) -> None:
        """Start from exported weights (e.g. the shipped model) instead of random init."""
        own = self.model.state_dict()
        own.update({k: v.float() for k, v in weights.items() if k in own and own[k].shape == v.shape})
        self.model.load_state_dict(own)
        self.ema = {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    @torch.no_grad()
    def _update_ema(self) -> None:
        # Frozen parameters are copied, not averaged: decay * v + (1 - decay) * v is not exactly v in float32,
        # and a frozen encoder side must stay bit-identical for an exported stage to code the same bytes.
        frozen = {k for k, p in self.model.named_parameters() if not p.requires_grad}
        for k, v in self.model.state_dict().items():
            if v.dtype.is_floating_point and k not in frozen:
                self.ema[k].mul_(self.ema_decay).add_(v.detach(), alpha=1 - self.ema_decay)
            else:
                self.ema[k].copy_(v)

    def _request_stop(self, *_: object) -> None:
        self._stop = True

    def _should_stop(self, start: float, minutes: float | None) -> bool:
        stop = self._stop or (minutes is not None and time.time() - start > minutes * 60)
        if self.world > 1:  # every replica must take the same number of steps
            flag = torch.tensor([float(stop)])
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            stop = bool(flag.item())
        return stop

    def run(self, step_fn: Callable[[int], tuple[torch.Tensor, dict[str, float]]],
            steps: int, minutes: float | None = None, log_every: int = 50, progress: bool = True,
            validate: Callable[[int], None] | None = None, validate_every: int = 0) -> None:
        """Train until `steps` total steps, `minutes` of wall time, or SIGINT/SIGTERM.

        `validate(step)` runs on rank 0 every `validate_every` steps (not counted as training time).
        """
        old = {s: signal.signal(s, self._request_stop) for s in (signal.SIGTERM, signal.SIGINT)}
        log_path = self.run_dir / ("log.csv" if self.rank == 0 else f"log_rank{self.rank}.csv")
        new_log = not log_path.exists()
        start = time.time()
        last_ckpt = start
        sums: dict[str, float] = {}
        count = 0
        try:
            with open(log_path, "a", newline="") as log_file, tqdm(
                total=steps, initial=self.step, desc="train", dynamic_ncols=True,
                disable=not progress or self.rank != 0,
            ) as bar:
                writer = None
                while self.step < steps and not self._should_stop(start, minutes):
                    t0 = time.time()
                    lr = self.schedule(self.step)
                    for group in self.optimizer.param_groups:
                        group["lr"] = lr * group["scale"]
                    self.model.train()
                    loss, metrics = step_fn(self.step)
                    self.optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    nn.utils.clip_grad_norm_(self.model.parameters(), self.clip)
                    self.optimizer.step()
                    self._update_ema()
                    self.step += 1
                    self.elapsed += time.time() - t0
                    metrics = {"loss": float(loss.detach()), **metrics}
                    for k, v in metrics.items():
                        sums[k] = sums.get(k, 0.0) + v
                    count += 1
                    bar.update(1)
                    if self.step % log_every == 0:
                        row = {"step": self.step, "elapsed_s": round(self.elapsed, 1), "lr": lr}
                        row.update({k: round(v / count, 5) for k, v in sums.items()})
                        if writer is None:
                            writer = csv.DictWriter(log_file, fieldnames=list(row))
                            if new_log:
                                writer.writeheader()
                        writer.writerow(row)
                        log_file.flush()
                        bar.set_postfix({k: f"{v / count:.4g}" for k, v in sums.items()})
                        sums, count = {}, 0
                    if validate is not None and validate_every and self.step % validate_every == 0 \
                            and self.rank == 0:
                        validate(self.step)
                    if time.time() - last_ckpt > self.checkpoint_seconds:
                        self.save()
                        last_ckpt = time.time()
        finally:
            self.save()
            for s, handler in old.items():
                signal.signal(s, handler)
