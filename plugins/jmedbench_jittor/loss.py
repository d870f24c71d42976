"""The Jittor side of :mod:`jmedbench.engine.train`: the same loss, and which parameters learn
and count. Shared by the backend's training loop and by the speed comparison."""

from __future__ import annotations

from typing import Any

import numpy as np

from jmedbench_jittor.runtime import import_jittor


def dice_ce_loss(logits, target, weights, smooth: float = 1.0):
    """Jittor version of :func:`jmedbench.engine.train.dice_ce_loss` (same formula): weighted
    cross-entropy (torch's weighted mean: sum w_y * nll / sum w_y) + mean soft Dice loss over
    the foreground classes, pooled over the batch."""
    jt = import_jittor()
    from jittor import nn

    num_classes = logits.shape[1]
    onehot = (target.unsqueeze(1) == jt.arange(num_classes).reshape(1, -1, 1, 1)).float32()
    log_probs = nn.log_softmax(logits, dim=1)
    pixel_weights = (onehot * weights.reshape(1, -1, 1, 1)).sum(1)
    nll = -(log_probs * onehot).sum(1)
    ce = (pixel_weights * nll).sum() / pixel_weights.sum()
    probs = log_probs.exp()[:, 1:]
    fg = onehot[:, 1:]
    inter = (probs * fg).sum(dims=(0, 2, 3))
    denom = probs.sum(dims=(0, 2, 3)) + fg.sum(dims=(0, 2, 3))
    dice = (2 * inter + smooth) / (denom + smooth)
    return ce + (1 - dice).mean()


def trainable(model: Any) -> list:
    """Parameters that learn: Jittor lists BatchNorm running statistics among a module's
    variables, but they are stop-grad."""
    return [p for p in model.parameters() if not p.is_stop_grad()]


def parameter_count(model: Any) -> int:
    """Parameters as torch counts them (BatchNorm running statistics excluded)."""
    return int(sum(int(np.prod(v.shape)) for k, v in model.state_dict().items()
                   if not k.endswith(("running_mean", "running_var"))))
