"""``stn``: a spatial transformer (Jaderberg et al. 2015) in front of any segmenter.

A small localisation CNN (conv channels 8-16-32-64, then fully connected 256-32-6) predicts a
2x3 affine matrix per image; the input is resampled with it, segmented, and the logits are
resampled back with the inverse matrix, so predictions, losses and metrics all stay in the
original image frame (the label maps are never moved). The last layer starts at zero weights and
the identity bias, so at initialisation the wrapped model computes exactly what the plain model
computes and the transformer only moves once training finds a reason to.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from jmedbench.labels import IN_CHANNELS
from jmedbench.strategy import Strategy, TrainContext

IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
LOCALISATION_SIZE = 64


class LocalisationNet(nn.Module):
    """(B, C, H, W) -> (B, 2, 3). Four conv + pool stages (8, 16, 32, 64 channels), an adaptive
    2x2 pool (so any input size works: 64 * 2 * 2 = 256 features), then 256 -> 32 -> 6."""

    def __init__(self, in_channels: int = 1, channels: tuple[int, ...] = (8, 16, 32, 64)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = in_channels
        for cout in channels:
            layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout),
                       nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            cin = cout
        layers.append(nn.AdaptiveAvgPool2d(2))
        self.features = nn.Sequential(*layers)
        self.regressor = nn.Sequential(nn.Flatten(), nn.Linear(cin * 4, 32),
                                       nn.ReLU(inplace=True), nn.Linear(32, 6))
        last = self.regressor[-1]
        nn.init.zeros_(last.weight)
        with torch.no_grad():
            last.bias.copy_(torch.tensor(IDENTITY))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.regressor(self.features(x)).view(-1, 2, 3)


def invert_affine(theta: torch.Tensor) -> torch.Tensor:
    """Inverse of (B, 2, 3) affine maps [A | t]: [A^-1 | -A^-1 t]."""
    a_inv = torch.linalg.inv(theta[:, :, :2])
    return torch.cat([a_inv, -a_inv @ theta[:, :, 2:]], dim=2)


def warp(x: torch.Tensor, theta: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """Resample ``x`` at ``theta @ (output coordinates)`` (``affine_grid`` convention); outside
    the image repeats the border (air in CT, background logits), never zeros."""
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode=mode, padding_mode="border", align_corners=False)


class SpatialTransformerSegmenter(nn.Module):
    """Warp the input, segment it, warp the logits back: same inputs and outputs as
    ``segmenter``, for any segmenter. ``encode`` is passed through when the segmenter has it."""

    def __init__(self, segmenter: nn.Module, in_channels: int = 1) -> None:
        super().__init__()
        self.segmenter = segmenter
        self.localisation = LocalisationNet(in_channels)
        if callable(getattr(segmenter, "encode", None)):
            # Set per instance so that hasattr(wrapper, "encode") tells the truth.
            self.encode = segmenter.encode
        if hasattr(segmenter, "encoder_channels"):
            self.encoder_channels = segmenter.encoder_channels

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 2, 3) affine per image. The localisation net sees the input average-pooled to
        about 64 pixels on its short side: a global affine needs no fine detail, and at full
        resolution the localisation net would cost a sizeable fraction of a small segmenter."""
        factor = max(1, min(x.shape[-2:]) // LOCALISATION_SIZE)
        return self.localisation(F.avg_pool2d(x, factor) if factor > 1 else x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        theta = self.transform(x)
        logits = self.segmenter(warp(x, theta))
        return warp(logits, invert_affine(theta))


class SpatialTransformerStrategy(Strategy):
    name = "stn"

    def prepare_model(self, model: Any, ctx: TrainContext) -> Any:
        return SpatialTransformerSegmenter(model, IN_CHANNELS)
