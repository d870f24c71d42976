"""Weights across frameworks: a PyTorch state dict into a Jittor model and back, strictly.

Jittor's own ``load_parameters`` logs a warning for a name it does not know and goes on; here
every mismatch (a missing or unexpected name, a shape) raises, so a model whose layout drifted
from its torch twin is caught instead of running on half-random weights. torch's
``num_batches_tracked`` buffers (a BatchNorm step counter Jittor does not keep) are the one
difference the conversion expects; they do not affect eval-mode outputs.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

TORCH_ONLY_SUFFIXES = ("num_batches_tracked",)


def _torch_only(name: str) -> bool:
    return name.endswith(TORCH_ONLY_SUFFIXES)


def _as_numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # torch tensor
        return value.detach().cpu().numpy()
    if hasattr(value, "numpy"):  # jittor Var
        return value.numpy()
    return np.asarray(value)


def check_layout(expected: Mapping[str, tuple], given: Mapping[str, tuple], what: str) -> None:
    """Raise ValueError naming the first few differences between two name -> shape maps."""
    missing = sorted(set(expected) - set(given))
    unexpected = sorted(set(given) - set(expected))
    shapes = [f"{k}: {tuple(given[k])} vs {tuple(expected[k])}" for k in sorted(expected)
              if k in given and tuple(given[k]) != tuple(expected[k])]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing (e.g. {', '.join(missing[:3])})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:3])})")
    if shapes:
        problems.append(f"{len(shapes)} with another shape (e.g. {'; '.join(shapes[:3])})")
    if problems:
        raise ValueError(f"{what}: " + "; ".join(problems))


def load_torch_state(model: Any, state: Mapping[str, Any]) -> None:
    """Copy a torch state dict (names -> tensors or arrays) into a Jittor model, strictly."""
    from jmedbench_jittor.runtime import import_jittor

    jt = import_jittor()
    own = model.state_dict()
    given = {k: _as_numpy(v) for k, v in state.items() if not _torch_only(k)}
    check_layout({k: tuple(v.shape) for k, v in own.items()},
                 {k: v.shape for k, v in given.items()}, "torch state dict -> jittor model")
    for name, var in own.items():
        var.update(jt.array(given[name].astype(np.float32, copy=False)
                            if given[name].dtype == np.float64 else given[name]))
    jt.sync_all()


def jittor_state(model: Any) -> dict[str, Any]:
    """The Jittor model's state as torch tensors, named as its torch twin names them."""
    import torch

    return {k: torch.from_numpy(np.ascontiguousarray(v.numpy())) for k, v in
            model.state_dict().items()}


def load_into_torch(torch_model: Any, jittor_model: Any) -> None:
    """Copy a Jittor model's weights into its torch twin, strictly (torch keeps its own
    ``num_batches_tracked``)."""
    own = torch_model.state_dict()
    state = jittor_state(jittor_model)
    check_layout({k: tuple(v.shape) for k, v in own.items() if not _torch_only(k)},
                 {k: tuple(v.shape) for k, v in state.items()}, "jittor model -> torch model")
    for name, value in own.items():
        if _torch_only(name):
            state[name] = value
    torch_model.load_state_dict(state, strict=True)
