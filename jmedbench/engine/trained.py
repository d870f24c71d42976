"""A run's trained model on disk: written when the run finishes, rebuilt by ``predict`` and
``export``.

The file is ``<artifacts>/<run_id>/model.safetensors`` (the store's artifacts folder, recorded
in the run as ``artifacts["weights"]``): the state dict of the model as trained (wrapped by the
strategy where it wraps one, e.g. a spatial transformer in front), and in its header what
rebuilds it: model name and options, strategy and its options, backend, image size and the
field of view of the training images (mm), the HU-to-input mapping the model was trained on,
the run id. It loads back with ``--weights`` as any weights file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from jmedbench.config import RunConfig
from jmedbench.data import Dataset
from jmedbench.engine.build import build_strategy, instantiate_model
from jmedbench.engine.preprocess import INPUT_MAPPING, mapping_name
from jmedbench.errors import UserError
from jmedbench.grid import DEFAULT_FOV_MM
from jmedbench.registry import Registry
from jmedbench.runs import find_run
from jmedbench.store import Store
from jmedbench.strategy import TrainContext
from jmedbench.weights import check_compatible, read_metadata, read_state_dict, save_weights

WEIGHTS_NAME = "model.safetensors"
FORMAT = "jmedbench-run-weights/1"
# What files written before the mapping was recorded were trained on (the full CT range).
UNRECORDED_MAPPING = mapping_name(-1024.0, 3071.0, 1000.0)


@dataclass
class RunModel:
    """A stored run's model, rebuilt and loaded, with what its images must look like."""

    model: Any
    run_id: str
    model_name: str
    image_size: int
    fov_mm: float
    path: Path
    meta: dict[str, Any]
    execution: Any = None  # jmedbench.engine.devices.Execution it predicts in; None: CPU fp32


def training_fov_mm(dataset: Dataset, image_size: int) -> float:
    """The field of view (mm) of the training images: median over the training subjects of
    image_size x their in-plane pixel size (the phantom's site N: 160 mm)."""
    subjects = dataset.split("train") if dataset.has_split("train") else []
    sizes = [image_size * float(s.spacing[2]) for s in subjects]
    return round(float(np.median(sizes)), 3) if sizes else DEFAULT_FOV_MM


def weights_metadata(cfg: RunConfig, run_id: str, dataset: Dataset) -> dict[str, str]:
    generic = {k: v for k, v in cfg.model_options.items() if not isinstance(v, dict)}
    own = cfg.model_options.get(cfg.model, {})
    meta = {"format": FORMAT, "run_id": run_id, "model": cfg.model,
            "model_options": {"generic": generic, "own": own if isinstance(own, dict) else {}},
            "strategy": cfg.strategy, "strategy_options": cfg.strategy_options,
            "backend": cfg.backend, "image_size": cfg.data.image_size,
            "fov_mm": training_fov_mm(dataset, cfg.data.image_size), "dataset": cfg.dataset,
            "input": INPUT_MAPPING}
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in meta.items()}


def save_run_weights(store: Store, run_id: str, cfg: RunConfig, trained: Any) -> list[str]:
    """Write the trained model of a finished run beside its store and record it; returns
    warnings (a backend without torch modules, a folder that cannot be written): a completed
    run is never failed for its weights."""
    if cfg.backend != "torch":
        return [f"weights not saved: backend '{cfg.backend}' models are not torch modules"]
    try:
        path = store.artifacts_dir(run_id) / WEIGHTS_NAME
        save_weights(trained.model, path, weights_metadata(cfg, run_id, trained.dataset))
    except (UserError, OSError) as exc:
        return [f"weights not saved: {exc}"]
    store.set_artifacts(run_id, {"weights": str(path)})
    return []


def run_weights_path(record: dict[str, Any]) -> Path:
    """The weights file of a stored run, or one line saying why there is none."""
    run_id = record["run_id"]
    if record["status"] != "completed":
        raise UserError(f"run {run_id} is {record['status']}: only a completed run has a "
                        f"trained model")
    path = (record.get("artifacts") or {}).get("weights")
    if not path:
        raise UserError(f"run {run_id} has no saved weights (trained with --no-save-weights, "
                        f"or by a jmedbench that kept none): train it again with jmedbench run")
    path = Path(path)
    if not path.is_file():
        raise UserError(f"run {run_id}: its weights file {path} is missing (moved or deleted)")
    return path


def _decoded(meta: dict[str, str], path: Path) -> dict[str, Any]:
    if meta.get("format") != FORMAT:
        raise UserError(f"weights {path}: not a jmedbench run's weights file (no "
                        f"'{FORMAT}' header); use it with jmedbench run --weights")
    out: dict[str, Any] = {}
    for key, value in meta.items():
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def load_run_model(registry: Registry, store: Store, run_id: str,
                   weights: str | Path | None = None, execution: Any = None) -> RunModel:
    """The model of stored run ``run_id`` (prefix allowed), rebuilt from its weights file (or
    ``weights``, which must hold the same model), in eval mode, on ``execution``'s device
    (:class:`jmedbench.engine.devices.Execution`; default the CPU)."""
    record = find_run(store, run_id)
    path = Path(weights) if weights else run_weights_path(record)
    meta = _decoded(read_metadata(path), path)
    if meta.get("model") != record["model"]:
        raise UserError(f"weights {path} hold model '{meta.get('model')}', but run "
                        f"{record['run_id']} trained '{record['model']}'")
    mapping = meta.get("input", UNRECORDED_MAPPING)
    if mapping != INPUT_MAPPING:
        raise UserError(f"weights {path} were trained on inputs {mapping}, but this jmedbench "
                        f"feeds models {INPUT_MAPPING}: train run {record['run_id']} again")
    spec = registry.model(meta["model"], meta.get("backend", "torch"))
    options = meta.get("model_options") or {}
    model, _ = instantiate_model(spec, options.get("own") or {},
                                 fitting=options.get("generic") or {},
                                 where=f"weights {path}: model options")
    strategy = build_strategy(registry, meta.get("strategy") or "baseline",
                              meta.get("strategy_options") or {})
    size = int(meta["image_size"])
    # prepare_model wraps the model (a spatial transformer in front); it trains nothing, so
    # the context holds no images.
    empty = np.zeros((0, size, size), np.float32)
    context = TrainContext(train_images=empty, train_labels=empty.astype(np.int64),
                           unlabelled_images=None, seed=int(record.get("seed") or 0),
                           options=meta.get("strategy_options") or {}, model_spec=spec)
    model = strategy.prepare_model(model, context)
    state = read_state_dict(path)
    check_compatible(model, state, f"weights {path}", meta["model"])
    model.load_state_dict(state, strict=True)
    if execution is not None:
        model = execution.place_model(model)
    model.eval()
    return RunModel(model, record["run_id"], meta["model"], size, float(meta["fov_mm"]), path,
                    meta, execution)
