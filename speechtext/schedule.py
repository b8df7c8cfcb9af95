"""The training schedule: the learning-rate curve, and the wall-clock budget that can end a run early.

``train.max_minutes`` bounds a run by time rather than by a fixed number of steps. At every logged
step the trainer re-estimates the seconds a step takes on this machine (validation passes included)
and moves the last step so that the run, its final validation and the checkpoint averaging end within
the budget, never beyond ``train.max_steps``; the cosine decay is re-fitted to end at that step. A
slower CPU trains fewer steps instead of running late. The step count then depends on the machine:
the run logs it, the model directory records it (``training.steps``), and a run given
``train.max_steps`` alone has a fixed length. A resumed run counts the time its killed run spent.
"""
from __future__ import annotations

import math
import time

FINISH_SECONDS = 5.0  # kept at the end beside the last validation pass: averaging and saving the final model


def lr_lambda(warmup: int, total: int, final_ratio: float):
    """Linear warm-up to the peak, then cosine decay to ``final_ratio`` of it at ``total`` steps."""
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(1, warmup)
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return final_ratio + (1 - final_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    return factor


def budget_steps(step: int, loop_seconds: float, seconds: float, budget: float, reserve: float, cap: int) -> int:
    """The last step that ends a run within ``budget`` seconds: ``step`` steps have taken ``loop_seconds``
    (validation passes included) of the ``seconds`` the run has spent, and ``reserve`` seconds are kept
    for its end. At least ``step`` (a spent budget stops the run now), at most ``cap``."""
    per_step = max(loop_seconds, 1e-6) / max(step, 1)
    return max(step, min(cap, step + int((budget - seconds - reserve) / per_step)))


class TrainClock:
    """Wall-clock seconds of a run, summed over the processes that resumed it: in all, and in the
    training loop (the part that scales with the steps)."""

    def __init__(self, seconds: float = 0.0, loop_seconds: float = 0.0, start: float | None = None):
        self.before, self.loop_before = seconds, loop_seconds
        self.start, self.loop_start = start or time.time(), None

    def enter_loop(self) -> None:
        self.loop_start = time.time()

    def seconds(self) -> float:
        return self.before + time.time() - self.start

    def loop_seconds(self) -> float:
        return self.loop_before + (time.time() - self.loop_start if self.loop_start else 0.0)

    def state(self) -> dict:
        return {"seconds": self.seconds(), "loop_seconds": self.loop_seconds()}
