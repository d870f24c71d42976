"""``stn`` in Jittor: :mod:`jmedbench_strategies.stn` layer for layer (localisation CNN 8-16-32-64,
FC 256-32-6, identity-initialised; input warped, segmented, logits warped back)."""

from __future__ import annotations

from jmedbench_jittor.runtime import import_jittor

jt = import_jittor()  # sets CPU-only / oneDNN before Jittor's first import
from jittor import nn  # noqa: E402

from jmedbench_jittor.layers import BatchNorm2d  # noqa: E402

IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


class LocalisationNet(nn.Module):
    def __init__(self, in_channels: int = 1, channels: tuple[int, ...] = (8, 16, 32, 64)) -> None:
        super().__init__()
        layers: list = []
        cin = in_channels
        for cout in channels:
            layers += [nn.Conv2d(cin, cout, 3, padding=1), BatchNorm2d(cout), nn.ReLU(),
                       nn.MaxPool2d(2)]
            cin = cout
        layers.append(nn.AdaptiveAvgPool2d(2))
        self.features = nn.Sequential(*layers)
        self.regressor = nn.Sequential(nn.Flatten(), nn.Linear(cin * 4, 32), nn.ReLU(),
                                       nn.Linear(32, 6))
        last = self.regressor[3]
        last.weight.update(jt.zeros(last.weight.shape))
        last.bias.update(jt.array(IDENTITY))

    def execute(self, x):
        return self.regressor(self.features(x)).reshape(-1, 2, 3)


def invert_affine(theta):
    """Inverse of (B, 2, 3) affine maps [A | t] in closed form: [A^-1 | -A^-1 t]."""
    a, b, tx = theta[:, 0, 0], theta[:, 0, 1], theta[:, 0, 2]
    c, d, ty = theta[:, 1, 0], theta[:, 1, 1], theta[:, 1, 2]
    det = a * d - b * c
    ia, ib, ic, id_ = d / det, -b / det, -c / det, a / det
    row0 = jt.stack([ia, ib, -(ia * tx + ib * ty)], dim=1)
    row1 = jt.stack([ic, id_, -(ic * tx + id_ * ty)], dim=1)
    return jt.stack([row0, row1], dim=1)


def warp(x, theta, mode: str = "bilinear"):
    grid = nn.affine_grid(theta, list(x.shape), align_corners=False)
    return nn.grid_sample(x, grid, mode=mode, padding_mode="border", align_corners=False)


class SpatialTransformerSegmenter(nn.Module):
    def __init__(self, segmenter, in_channels: int = 1) -> None:
        super().__init__()
        self.segmenter = segmenter
        self.localisation = LocalisationNet(in_channels)
        self._init_like_torch(in_channels)
        if callable(getattr(segmenter, "encode", None)):
            self.encode = segmenter.encode

    def _init_like_torch(self, in_channels: int) -> None:
        """Start from the torch localisation net's initial weights (same seed, same start)."""
        from jmedbench_strategies.stn import LocalisationNet as TorchLocalisationNet

        from jmedbench_jittor.parity import load_torch_state
        load_torch_state(self.localisation, TorchLocalisationNet(in_channels).state_dict())

    def transform(self, x):
        return self.localisation(x)

    def execute(self, x):
        theta = self.transform(x)
        logits = self.segmenter(warp(x, theta))
        return warp(logits, invert_affine(theta))
