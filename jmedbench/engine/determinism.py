"""Same config and seed, same numbers. What we fix, and why:

- numpy: every random draw goes through ``numpy.random.default_rng(seed + offset)`` passed
  explicitly; no global state is used.
- torch: ``torch.manual_seed`` before building the model (weights), a dedicated
  ``torch.Generator`` for batch sampling and augmentation, and
  ``torch.use_deterministic_algorithms(True)`` so kernels with non-deterministic reductions
  raise instead of drifting.
- threads: results can depend on the intra-op thread count (reduction order), so it is stored
  with the run; identical metrics are promised for the same config, seed *and* machine.
"""

from __future__ import annotations

import os
import random

import numpy as np


def seed_everything(seed: int) -> None:
    import torch

    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    random.seed(seed)
    np.random.seed(seed % 2**32)  # for third-party code that still uses the global state
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    if hasattr(torch.backends, "cudnn"):
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True


def rng(seed: int, stream: int = 0) -> np.random.Generator:
    """An independent numpy generator for one purpose (``stream``) of a seeded run."""
    return np.random.default_rng([seed, stream])


def requested_threads() -> int | None:
    """``JMEDBENCH_THREADS`` (set by ``bench --workers`` so that parallel runs do not
    oversubscribe the cores), or None where it is unset or not a positive integer."""
    wanted = os.environ.get("JMEDBENCH_THREADS", "")
    return int(wanted) if wanted.isdigit() and int(wanted) > 0 else None


def configure_threads() -> int:
    """Honour :func:`requested_threads`; return the intra-op thread count in use."""
    import torch

    wanted = requested_threads()
    if wanted:
        torch.set_num_threads(wanted)
    return torch.get_num_threads()
