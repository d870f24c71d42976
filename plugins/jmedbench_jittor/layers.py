"""Jittor building blocks with the PyTorch zoo's layer layout: a block here has the same
children, in the same order, under the same names as its torch counterpart, so that a torch
state dict maps onto a Jittor model name for name (see :mod:`jmedbench_jittor.parity`).

Imported only after :func:`jmedbench_jittor.runtime.import_jittor` (it imports jittor).
"""

from __future__ import annotations

from jmedbench_jittor.runtime import import_jittor

jt = import_jittor()  # sets CPU-only / oneDNN before Jittor's first import
from jittor import nn  # noqa: E402


def conv_bn_relu(cin: int, cout: int, kernel: int = 3, stride: int = 1,
                 dilation: int = 1) -> nn.Sequential:
    """Conv (no bias, "same" padding) -> BatchNorm -> ReLU, as the zoo's ``conv_bn_relu``."""
    pad = dilation * (kernel // 2)
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, pad, dilation, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU())


class DoubleConv(nn.Sequential):
    """(3x3 conv, BN, ReLU) x 2: the UNet block (jmedbench_zoo.unet.DoubleConv)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class ModuleDict(nn.Module):
    """torch.nn.ModuleDict's naming (``parent.<key>.weight``); Jittor 1.3.11 has none."""

    def __init__(self) -> None:
        super().__init__()
        self._keys: list[str] = []

    def __setitem__(self, key: str, module: nn.Module) -> None:
        if key not in self._keys:
            self._keys.append(key)
        setattr(self, key, module)

    def __getitem__(self, key: str) -> nn.Module:
        return getattr(self, key)

    def keys(self) -> list[str]:
        return list(self._keys)


def max_pool(x: jt.Var, kernel: int = 2, stride: int | None = None, padding: int = 0,
             ceil_mode: bool = False, return_indices: bool = False):
    """torch's F.max_pool2d. Jittor 1.3.11 refuses maps no larger than the kernel (a 2x2 map
    pooled by 2, the deepest pooling of FCN/SegNet at 32x32), so that case is computed here."""
    stride = stride or kernel
    h, w = int(x.shape[-2]), int(x.shape[-1])
    if (h <= kernel or w <= kernel) and stride == kernel and not padding:
        return _window_max(x, kernel, return_indices)
    return nn.max_pool2d(x, kernel, stride, padding, return_indices=return_indices or None,
                         ceil_mode=ceil_mode)


def _window_max(x: jt.Var, k: int, return_indices: bool):
    """Non-overlapping k x k max pooling by reshaping; indices as torch's (flat in H*W)."""
    n, c, h, w = (int(s) for s in x.shape)
    oh, ow = h // k, w // k
    x = x[:, :, :oh * k, :ow * k]
    windows = x.reshape(n, c, oh, k, ow, k).permute(0, 1, 2, 4, 3, 5).reshape(n, c, oh, ow, k * k)
    if not return_indices:
        return windows.max(dim=4)
    index, value = jt.argmax(windows, dim=4)
    rows = jt.index((n, c, oh, ow), dim=2) * k + index // k
    cols = jt.index((n, c, oh, ow), dim=3) * k + index % k
    return value, rows * w + cols


def resize_bilinear(x: jt.Var, size) -> jt.Var:
    """Bilinear, align_corners=False (torch's F.interpolate convention)."""
    size = tuple(int(s) for s in size)
    if tuple(x.shape[-2:]) == size:
        return x
    return nn.interpolate(x, size=size, mode="bilinear", align_corners=False)


def upsample_to(x: jt.Var, ref: jt.Var) -> jt.Var:
    return resize_bilinear(x, ref.shape[-2:])


def stage_channels(width: int, stages: int = 5) -> list[int]:
    if width < 1:
        raise ValueError(f"width must be a positive channel count, got {width}")
    return [width * 2 ** i for i in range(stages)]


def check_width(width: int) -> None:
    if width < 1:
        raise ValueError(f"width must be a positive channel count, got {width}")
