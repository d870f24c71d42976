"""Where a model runs and in which number format: ``--device`` and ``--precision``.

device: ``auto`` (the first CUDA GPU, else Apple's MPS, else the CPU), ``cpu``, ``cuda``,
``cuda:N`` or ``mps``. A device that this machine lacks is a user error, never a silent
fallback: a benchmark run on the CPU when the user asked for a GPU would mislead.

precision: ``fp32``, ``bf16``, ``fp16`` or ``auto``. Mixed precision is torch's autocast (the
weights and the optimiser stay fp32). ``auto`` picks bf16 only where it is fast: a CUDA GPU with
bf16 support, or a CPU with native bf16 arithmetic (AVX-512 BF16 or AMX); on other CPUs
(AVX2 only, e.g. many AMD EPYC machines) bf16 is emulated and slower than fp32, so auto is
fp32 there. fp16 needs a gradient scaler (CUDA only); on the CPU it is refused.

channels_last: NHWC memory layout for convolutions, which oneDNN and cuDNN run faster
(measured on an AVX-512 CPU for the zoo's UNet: 1.18x in fp32, 2.16x with bf16 autocast).
``auto`` uses it on CUDA and with bf16 on the CPU.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from jmedbench.errors import UserError

DEVICES_HELP = "auto | cpu | cuda | cuda:N | mps"
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
_DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


@dataclass(frozen=True)
class Execution:
    """A resolved device, precision and memory layout, with the accelerator's name (stored
    with every run, so that timings are never compared across devices unawares)."""

    device: str            # "cpu", "cuda:0", "mps"
    precision: str         # "fp32", "bf16", "fp16"
    channels_last: bool
    accelerator: str       # e.g. "NVIDIA H200" or the CPU's model name

    @property
    def device_type(self) -> str:
        return self.device.split(":")[0]

    def autocast(self) -> contextlib.AbstractContextManager:
        """The context a forward pass runs in: autocast for bf16/fp16, nothing for fp32."""
        import torch

        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(device_type=self.device_type, dtype=dtype)

    def grad_scaler(self) -> Any:
        """A gradient scaler where the format needs one (fp16 on CUDA), else None."""
        if self.precision != "fp16":
            return None
        import torch

        return torch.amp.GradScaler(self.device_type)

    def memory_format(self) -> Any:
        import torch

        return torch.channels_last if self.channels_last else torch.contiguous_format

    def place_model(self, model: Any) -> Any:
        """The model on this device in this memory layout (in place for torch modules)."""
        return model.to(device=self.device, memory_format=self.memory_format())

    def place_batch(self, tensor: Any) -> Any:
        """A 4-D input batch on this device in this layout (labels: use ``to_device``)."""
        return tensor.to(device=self.device, memory_format=self.memory_format(),
                         non_blocking=True)

    def to_device(self, tensor: Any) -> Any:
        return tensor.to(device=self.device, non_blocking=True)

    def to_dict(self) -> dict[str, Any]:
        return {"device": self.device, "precision": self.precision,
                "channels_last": self.channels_last, "accelerator": self.accelerator}


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU feature flags Linux reports (empty elsewhere)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def cpu_has_fast_bf16(flags: frozenset[str] | None = None) -> bool:
    """Native bf16 arithmetic: AVX-512 BF16 or AMX (Intel Cooper Lake and later, AMD Zen 4)."""
    flags = cpu_flags() if flags is None else flags
    return any(flag in flags for flag in CPU_BF16_FLAGS)


@lru_cache(maxsize=1)
def cpu_name() -> str:
    import platform

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def check_spelling(device: str | None, precision: str | None) -> None:
    """``--device``/``--precision`` well formed, without asking this machine what it has (a
    Slurm login node launches work for GPU nodes it lacks itself)."""
    if device is not None and not _DEVICE_PATTERN.match(str(device).strip().lower()):
        raise UserError(f"--device {device!r}: expected {DEVICES_HELP}")
    if precision is not None and str(precision).strip().lower() not in PRECISIONS:
        raise UserError(f"--precision {precision!r}: expected one of {', '.join(PRECISIONS)}")


def resolve_device(name: str) -> str:
    """``name`` as a concrete torch device string; a device this machine lacks is a
    :class:`UserError` naming what it has."""
    import torch

    check_spelling(name, None)
    text = str(name).strip().lower()
    has_cuda = torch.cuda.is_available()
    has_mps = bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()
    if text == "auto":
        return "cuda:0" if has_cuda else ("mps" if has_mps else "cpu")
    if text == "cpu":
        return "cpu"
    if text == "mps":
        if not has_mps:
            raise UserError("--device mps: this machine has no Apple MPS device "
                            f"(available: {', '.join(available_devices())})")
        return "mps"
    index = int(text.split(":")[1]) if ":" in text else 0
    if not has_cuda:
        raise UserError(f"--device {name}: torch sees no CUDA GPU on this machine "
                        f"(available: {', '.join(available_devices())})")
    count = torch.cuda.device_count()
    if index >= count:
        raise UserError(f"--device {name}: this machine has {count} CUDA GPU(s), "
                        f"cuda:0 to cuda:{count - 1}")
    return f"cuda:{index}"


def available_devices() -> list[str]:
    import torch

    found = ["cpu"]
    if torch.cuda.is_available():
        found += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        found.append("mps")
    return found


def resolve_precision(name: str, device: str, flags: frozenset[str] | None = None) -> str:
    """The number format for ``name`` on ``device`` (see the module docstring)."""
    import torch

    check_spelling(None, name)
    text = str(name).strip().lower()
    kind = device.split(":")[0]
    if text == "auto":
        if kind == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        if kind == "cpu" and cpu_has_fast_bf16(flags):
            return "bf16"
        return "fp32"
    if text == "fp16" and kind == "cpu":
        raise UserError("--precision fp16: not on the CPU (no fast fp16 kernels, and a "
                        "gradient scaler is a CUDA tool); use bf16 or fp32")
    return text


CHANNELS_LAST = {"auto": "auto", "on": True, "off": False, True: True, False: False}


def resolve_execution(device: str = "auto", precision: str = "auto",
                      channels_last: bool | str = "auto", *,
                      backend: str = "torch", backend_devices: tuple[str, ...] | None = None,
                      backend_precisions: tuple[str, ...] | None = None) -> Execution:
    """Device, precision and layout as one value (the thing a run records).

    ``backend_devices``/``backend_precisions``: what a backend other than torch can run
    (device types such as ``("cpu",)``; None = whatever torch can). ``auto`` then picks within
    them; an explicit choice outside them is a :class:`UserError` naming the backend."""
    import torch

    if backend_devices is not None and str(device).strip().lower() == "auto":
        device = backend_devices[0]
    resolved = resolve_device(device)
    kind = resolved.split(":")[0]
    if backend_devices is not None and kind not in backend_devices:
        raise UserError(f"--device {device}: backend '{backend}' runs on "
                        f"{' or '.join(backend_devices)} only")
    if backend_precisions is not None and str(precision).strip().lower() == "auto":
        precision = backend_precisions[0]
    chosen = resolve_precision(precision, resolved)
    if backend_precisions is not None and chosen not in backend_precisions:
        raise UserError(f"--precision {precision}: backend '{backend}' trains in "
                        f"{' or '.join(backend_precisions)} only")
    key = channels_last.strip().lower() if isinstance(channels_last, str) else channels_last
    if key not in CHANNELS_LAST:
        raise UserError(f"channels_last {channels_last!r}: expected auto, on or off")
    layout = CHANNELS_LAST[key]
    if layout == "auto":
        layout = kind == "cuda" or (kind == "cpu" and chosen == "bf16")
    if kind == "cuda":
        accelerator = torch.cuda.get_device_name(int(resolved.split(":")[1]))
    elif kind == "mps":
        accelerator = "Apple MPS"
    else:
        accelerator = cpu_name()
    return Execution(device=resolved, precision=chosen, channels_last=layout,
                     accelerator=accelerator)
