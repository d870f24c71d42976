"""Jittor building blocks with the PyTorch zoo's layer layout: a block here has the same
children, in the same order, under the same names as its torch counterpart, so that a torch
state dict maps onto a Jittor model name for name (see :mod:`jmedbench_jittor.parity`).

Imported only after :func:`jmedbench_jittor.runtime.import_jittor` (it imports jittor).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from jmedbench_jittor.runtime import import_jittor

jt = import_jittor()  # sets CPU-only / oneDNN before Jittor's first import
from jittor import nn  # noqa: E402

from jmedbench_jittor.kernels import BatchNormTrain  # noqa: E402


class BatchNorm2d(nn.BatchNorm):
    """torch.nn.BatchNorm2d: Jittor's parameters and statistics (same names), with training
    mode on the multi-threaded kernels of :mod:`jmedbench_jittor.kernels` and torch's running
    variance (unbiased; Jittor's own keeps the biased one)."""

    def execute(self, x: jt.Var) -> jt.Var:
        if not self.is_train or x.ndim != 4 or str(x.dtype) != "float32":
            return super().execute(x)
        y, mean, var = BatchNormTrain()(x, self.weight, self.bias, float(self.eps))
        count = x.numel() // x.shape[1]
        unbiased = var * (count / max(count - 1, 1))
        self.running_mean.update(self.running_mean + (mean - self.running_mean) * self.momentum)
        self.running_var.update(self.running_var + (unbiased - self.running_var) * self.momentum)
        return y


def conv_bn_relu(cin: int, cout: int, kernel: int = 3, stride: int = 1,
                 dilation: int = 1) -> nn.Sequential:
    """Conv (no bias, "same" padding) -> BatchNorm -> ReLU, as the zoo's ``conv_bn_relu``."""
    pad = dilation * (kernel // 2)
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, pad, dilation, bias=False),
                         BatchNorm2d(cout), nn.ReLU())


class DoubleConv(nn.Sequential):
    """(3x3 conv, BN, ReLU) x 2: the UNet block (jmedbench_zoo.unet.DoubleConv)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False), BatchNorm2d(cout), nn.ReLU(),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False), BatchNorm2d(cout), nn.ReLU())


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


def bilinear_matrix(n_in: int, n_out: int) -> np.ndarray:
    """The (n_out, n_in) matrix of 1-D linear resampling as torch's ``F.interpolate(...,
    mode="bilinear", align_corners=False)`` computes it, in float32 as torch does: source
    coordinate ``(i + 0.5) * n_in / n_out - 0.5``, clamped at 0, between two neighbours whose
    upper index is clamped to the last row."""
    scale = np.float32(n_in) / np.float32(n_out)
    src = np.maximum((np.arange(n_out, dtype=np.float32) + np.float32(0.5)) * scale
                     - np.float32(0.5), np.float32(0.0))
    low = np.minimum(src.astype(np.int64), n_in - 1)
    high = np.minimum(low + 1, n_in - 1)
    frac = src - low.astype(np.float32)
    matrix = np.zeros((n_out, n_in), np.float32)
    rows = np.arange(n_out)
    np.add.at(matrix, (rows, low), np.float32(1.0) - frac)
    np.add.at(matrix, (rows, high), frac)
    return matrix


@lru_cache(maxsize=64)
def _bilinear_right_factor(n_in: int, n_out: int) -> np.ndarray:
    """``bilinear_matrix`` transposed, contiguous: the right-hand factor of the products
    (cached here only, so no caller can change a cached matrix through what it was given)."""
    return np.ascontiguousarray(bilinear_matrix(n_in, n_out).T)


def resize_bilinear(x: jt.Var, size) -> jt.Var:
    """Bilinear, align_corners=False (torch's F.interpolate convention), as two matrix
    products, rows then columns. Jittor's own ``nn.interpolate`` computes source indices per
    element in one single-threaded kernel (forward and backward), 3-6x slower than torch on
    CPU; these products run in oneDNN's multi-threaded GEMM
    (``benchmarks/bench_jittor_layers.py``)."""
    n, c, h, w = (int(s) for s in x.shape)
    out_h, out_w = (int(s) for s in size)
    if (h, w) == (out_h, out_w):
        return x
    y = x
    if out_h != h:  # (n*c*w, h) @ (h, out_h), then back to (n, c, out_h, w)
        rows = jt.array(_bilinear_right_factor(h, out_h))
        y = y.reshape(n * c, h, w).transpose(0, 2, 1).reshape(n * c * w, h)
        y = nn.matmul(y, rows).reshape(n * c, w, out_h).transpose(0, 2, 1)
    if out_w != w:  # (n*c*out_h, w) @ (w, out_w)
        cols = jt.array(_bilinear_right_factor(w, out_w))
        y = nn.matmul(y.reshape(n * c * out_h, w), cols)
    return y.reshape(n, c, out_h, out_w)


def upsample_to(x: jt.Var, ref: jt.Var) -> jt.Var:
    return resize_bilinear(x, ref.shape[-2:])


def stage_channels(width: int, stages: int = 5) -> list[int]:
    if width < 1:
        raise ValueError(f"width must be a positive channel count, got {width}")
    return [width * 2 ** i for i in range(stages)]


def check_width(width: int) -> None:
    if width < 1:
        raise ValueError(f"width must be a positive channel count, got {width}")
