"""``--weights PATH``: load a model's parameters from a file that cannot run code.

Formats, by suffix:

- ``.safetensors``: read with :mod:`safetensors` (no code can run while reading).
- ``.pt`` / ``.pth``: read with ``torch.load(weights_only=True)``: tensors and plain
  containers only; a pickle that holds Python objects is refused, never executed.

The file holds a state dict (names -> tensors). Two common wrappings are accepted and said so:
a dict with the state dict under ``state_dict``, ``model_state_dict`` or ``model`` (training
checkpoints), and names prefixed ``module.`` (saved from ``DataParallel``). Every problem is one
:class:`jmedbench.errors.UserError` line naming the file: missing, unreadable or corrupt,
keys that do not match the model (a few missing and unexpected names), or the first tensor
whose shape differs (both shapes).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping

import torch

from jmedbench.errors import UserError

SAFETENSORS_SUFFIXES = (".safetensors",)
TORCH_SUFFIXES = (".pt", ".pth")
SUFFIXES = SAFETENSORS_SUFFIXES + TORCH_SUFFIXES
WRAPPER_KEYS = ("state_dict", "model_state_dict", "model")
SHOWN_KEYS = 3  # names listed per kind of key mismatch


def add_weights_option(parser: Any) -> None:
    """``--weights PATH`` for any command that builds a model (profile, run)."""
    parser.add_argument("--weights", metavar="PATH",
                        help="load the model's parameters from a .safetensors file or a "
                             ".pt/.pth state dict (read with torch.load(weights_only=True))")


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a weights file by name, or one UserError line saying what is wrong."""
    path = Path(path)
    where = f"--weights {path}"
    if not path.exists():
        raise UserError(f"{where}: file not found")
    if path.is_dir():
        raise UserError(f"{where}: is a directory, expected a {'/'.join(SUFFIXES)} file")
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise UserError(f"{where}: unknown weights format '{path.suffix or '(no suffix)'}' "
                        f"(expected {', '.join(SUFFIXES)})")
    if suffix in SAFETENSORS_SUFFIXES:
        state = _read_safetensors(path, where)
    else:
        state = _read_torch(path, where)
    return _unwrap(state, where)


def _read_safetensors(path: Path, where: str) -> Any:
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except Exception as exc:  # SafetensorError, OSError, ...: the file is not usable
        raise UserError(f"{where}: not a readable safetensors file ({_short(exc)})") from None


def _read_torch(path: Path, where: str) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except OSError as exc:
        raise UserError(f"{where}: cannot read ({exc.strerror or exc})") from None
    except EOFError:
        raise UserError(f"{where}: empty or truncated file, not a torch.save file") from None
    except Exception as exc:
        text = str(exc)
        match = re.search(r"WeightsUnpickler error:\s*(.+?)(?:\s+Please|\n|$)", text)
        reason = (match.group(1).strip() if match else "").rstrip(".")
        if "Unsupported global" in reason:
            raise UserError(f"{where}: holds Python objects, not only tensors ({reason}); "
                            f"torch.load(weights_only=True) refuses them because loading could "
                            f"run code: save model.state_dict() instead") from None
        raise UserError(f"{where}: not a readable torch.save file "
                        f"({reason or _short(exc)})") from None


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else type(exc).__name__
    return first if len(first) <= 160 else first[:157] + "..."


def _unwrap(state: Any, where: str) -> dict[str, torch.Tensor]:
    if isinstance(state, Mapping):
        for key in WRAPPER_KEYS:
            inner = state.get(key)
            if isinstance(inner, Mapping) and inner and all(
                    isinstance(v, torch.Tensor) for v in inner.values()):
                state = inner
                break
    if not isinstance(state, Mapping):
        raise UserError(f"{where}: holds a {type(state).__name__}, expected a state dict "
                        f"(names -> tensors, as model.state_dict() gives)")
    not_tensors = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise UserError(f"{where}: entries {_few(not_tensors)} are not tensors; expected a "
                        f"state dict (names -> tensors), or one under "
                        f"{' / '.join(repr(k) for k in WRAPPER_KEYS)}")
    names = list(state)
    if names and all(str(k).startswith("module.") for k in names):
        state = {str(k)[len("module."):]: v for k, v in state.items()}
    return {str(k): v for k, v in state.items()}


def _few(names: list[str], shown: int = SHOWN_KEYS) -> str:
    listed = ", ".join(names[:shown])
    return listed + (f", ... ({len(names) - shown} more)" if len(names) > shown else "")


def check_compatible(model: torch.nn.Module, state: Mapping[str, torch.Tensor], where: str,
                     model_name: str | None = None) -> None:
    """Raise one UserError line if ``state`` does not fit ``model`` exactly."""
    expected = model.state_dict()
    what = f"model '{model_name}'" if model_name else "the model"
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing ({_few(missing)})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected ({_few(unexpected)})")
        raise UserError(f"{where}: keys do not match {what}: {'; '.join(parts)}; "
                        f"were these weights saved from another architecture or options?")
    for key, tensor in expected.items():
        if tuple(state[key].shape) != tuple(tensor.shape):
            raise UserError(f"{where}: shape mismatch for '{key}': "
                            f"{tuple(state[key].shape)} in the file, {tuple(tensor.shape)} in "
                            f"{what} (other width, number of classes or input channels?)")


def load_weights(model: torch.nn.Module, path: str | Path, model_name: str | None = None
                 ) -> torch.nn.Module:
    """Load ``path`` into ``model`` in place (strictly: same names, same shapes) and return it.

    Values are converted to each parameter's dtype (a float16 file loads into float32).
    """
    state = read_state_dict(path)
    where = f"--weights {path}"
    check_compatible(model, state, where, model_name)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:  # anything check_compatible did not foresee
        raise UserError(f"{where}: cannot load into {model_name or 'the model'} "
                        f"({_short(exc)})") from None
    return model


def save_weights(model: torch.nn.Module, path: str | Path,
                 metadata: Mapping[str, str] | None = None) -> Path:
    """Write ``model.state_dict()`` as .safetensors or .pt/.pth (by suffix); ``metadata``
    (strings, e.g. what rebuilds the model) goes into a safetensors file's header."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise UserError(f"weights file {path}: unknown format '{path.suffix}' "
                        f"(expected {', '.join(SUFFIXES)})")
    state = model.state_dict()
    if suffix in SAFETENSORS_SUFFIXES:
        from safetensors.torch import save_file

        # safetensors refuses tensors that share memory (tied weights) and non-contiguous
        # views: store an independent contiguous copy of each (on the CPU, wherever the model
        # was trained).
        tensors = {k: v.detach().cpu().contiguous().clone() for k, v in state.items()}
        save_file(tensors, str(path), metadata=dict(metadata) if metadata else None)
    else:
        if metadata:
            raise UserError(f"weights file {path}: metadata needs a .safetensors file")
        torch.save(state, path)
    return path


def read_metadata(path: str | Path) -> dict[str, str]:
    """The header metadata of a .safetensors file ({} for none, or for a .pt/.pth file)."""
    path = Path(path)
    read_state_dict(path)  # the same one-line errors for a missing or corrupt file
    if path.suffix.lower() not in SAFETENSORS_SUFFIXES:
        return {}
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        return dict(fh.metadata() or {})
