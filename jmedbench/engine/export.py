"""``jmedbench export``: a stored run's model as ONNX, checked with onnxruntime against torch on
the run's own test images (the same dataset, seed and image size, rebuilt from its config).

The graph takes ``image`` (N, 1, H, W) float32, the model input of
:func:`jmedbench.engine.preprocess.hu_to_input` (HU clipped to -250..1250, divided by 1000),
and gives ``logits`` (N, 3, H, W); the batch size is free. Written with torch's TorchScript
exporter (``dynamo=False``: the dynamo exporter needs ``onnxscript``), opset 17.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from jmedbench.config import DataConfig, EvalConfig, RunConfig, TrainConfig
from jmedbench.data import stack_slices
from jmedbench.engine.backends import to_input
from jmedbench.engine.build import build_dataset
from jmedbench.engine.trained import load_run_model
from jmedbench.errors import UserError
from jmedbench.registry import Registry
from jmedbench.store import Store

OPSET = 17
TOLERANCE = 1e-4  # max |onnxruntime - torch| on logits


@dataclass
class ExportResult:
    path: Path
    run_id: str
    model: str
    image_size: int
    n_images: int
    max_difference: float
    tolerance: float
    opset: int

    @property
    def ok(self) -> bool:
        return self.max_difference <= self.tolerance

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "path": str(self.path), "ok": self.ok}


def stored_config(record: dict[str, Any]) -> RunConfig:
    """The RunConfig a stored run ran with (its ``config`` is ``RunConfig.to_dict()``)."""
    raw = dict(record["config"] or {})
    sections = {"data": DataConfig, "train": TrainConfig, "eval": EvalConfig}
    known = {f.name for f in dataclasses.fields(RunConfig)}
    values = {k: v for k, v in raw.items() if k in known}
    for name, kind in sections.items():
        fields = {f.name for f in dataclasses.fields(kind)}
        values[name] = kind(**{k: v for k, v in (raw.get(name) or {}).items() if k in fields})
    return RunConfig(**values)


def run_test_images(registry: Registry, record: dict[str, Any], n_images: int) -> np.ndarray:
    """Up to ``n_images`` test slices of the run's dataset, spread over its test split."""
    cfg = stored_config(record)
    dataset = build_dataset(registry, cfg)
    split = "test" if dataset.has_split("test") else next(iter(dataset.splits))
    images, _ = stack_slices(dataset.split(split))
    pick = np.linspace(0, len(images) - 1, min(n_images, len(images))).round().astype(int)
    return images[np.unique(pick)]


def export_onnx(registry: Registry, store: Store, run_id: str, path: str | Path, *,
                overwrite: bool = False, n_images: int = 8) -> ExportResult:
    """Write the run's model to ``path`` as ONNX and compare onnxruntime's logits with
    torch's on its test images."""
    import torch

    try:
        import onnx  # noqa: F401 (torch's exporter needs it)
        import onnxruntime
    except ImportError:
        raise UserError("export --onnx needs onnx and onnxruntime: pip install "
                        "'jmedbench[export]'") from None
    path = Path(path)
    if path.suffix.lower() != ".onnx":
        raise UserError(f"--onnx {path}: expected a .onnx file name")
    if path.exists() and not overwrite:
        raise UserError(f"--onnx {path}: file exists (give --overwrite to replace it)")
    if not path.parent.is_dir():
        raise UserError(f"--onnx {path}: folder {path.parent} does not exist")
    if n_images < 1:
        raise UserError(f"--images {n_images}: must be at least 1")
    run_model = load_run_model(registry, store, run_id)
    record = store.get_run(run_model.run_id)
    inputs = to_input(run_test_images(registry, record, n_images))
    model = run_model.model.eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        expected = model(inputs).numpy()
        try:
            torch.onnx.export(model, (inputs[:1],), str(path), input_names=["image"],
                              output_names=["logits"], opset_version=OPSET, dynamo=False,
                              dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}})
        except Exception as exc:  # an operator without an ONNX form
            raise UserError(f"export --onnx: model '{run_model.model_name}' cannot be "
                            f"exported ({type(exc).__name__}: {str(exc)[:200]})") from None
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(["logits"], {"image": inputs.numpy()})[0]
    difference = float(np.max(np.abs(got - expected)))
    return ExportResult(path, run_model.run_id, run_model.model_name, run_model.image_size,
                        int(inputs.shape[0]), difference, TOLERANCE, OPSET)
