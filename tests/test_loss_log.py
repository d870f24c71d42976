"""The training-loop bookkeeping shared by the torch and Jittor backends (engine.train.LossLog)."""

from __future__ import annotations

import pytest

from jmedbench.engine.progress import Reporter
from jmedbench.engine.train import LossLog, TrainResult


class ModeModel:
    """Records the train/eval calls a training loop makes."""

    def __init__(self) -> None:
        self.modes: list[str] = []

    def train(self) -> None:
        self.modes.append("train")

    def eval(self) -> None:
        self.modes.append("eval")


def test_mean_loss_per_interval_callback_and_final_partial_interval():
    result = TrainResult(steps=7, seconds=0.0, images_seen=28)
    model, calls = ModeModel(), []
    log = LossLog(result, model, Reporter(), log_every=3,
                  on_log=lambda step, loss: calls.append((step, loss)))
    for step in range(1, 8):
        log.add(step, float(step))  # losses 1..7
    assert log.finish() is result
    # intervals 1-3, 4-6 and the last partial one, 7 alone
    assert result.losses == pytest.approx([2.0, 5.0, 7.0])
    assert calls == [(3, pytest.approx(2.0)), (6, pytest.approx(5.0)), (7, pytest.approx(7.0))]
    # back to training after each callback (tuning may evaluate), eval mode at the end
    assert model.modes == ["train", "train", "train", "eval"]
    assert result.seconds > 0


def test_a_callback_that_raises_stops_training():
    """Tuning prunes a trial by raising from on_log; the loop must not swallow it."""
    def prune(step, loss):
        raise RuntimeError(f"pruned at {step}")

    log = LossLog(TrainResult(steps=10, seconds=0.0, images_seen=40), ModeModel(), Reporter(),
                  log_every=2, on_log=prune)
    log.add(1, 1.0)
    with pytest.raises(RuntimeError, match="pruned at 2"):
        log.add(2, 1.0)
