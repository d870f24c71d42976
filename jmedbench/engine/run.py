"""One run: train one model with one strategy on one dataset, score it, store it."""

from __future__ import annotations

import re
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from jmedbench import provenance
from jmedbench.config import RunConfig
from jmedbench.data import Dataset, Evaluation
from jmedbench.engine.backends import get_backend
from jmedbench.engine.build import build_dataset, check_strategy_options
from jmedbench.engine.determinism import configure_threads
from jmedbench.engine.evaluate import (add_subject_values, aggregate, aggregate_subjects,
                                       dataset_metrics, image_metric_rows, subject_metric_rows)
from jmedbench.engine.pipeline import (Timer, predict_subjects, run_backend, run_execution,
                                       train_model)
from jmedbench.engine.progress import Reporter
from jmedbench.engine.robustness import evaluate_robustness
from jmedbench.engine.robustness import validate as validate_robustness
from jmedbench.engine.trained import save_run_weights
from jmedbench.errors import UserError
from jmedbench.labels import NUM_CLASSES
from jmedbench.registry import Registry
from jmedbench.store import Store
from jmedbench.weights import read_state_dict


@dataclass
class RunResult:
    run_id: str
    metrics: dict[str, Any]
    timings: dict[str, float]
    details: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def forward_gflops(model: torch.nn.Module, size: int) -> float | None:
    """GFLOPs of one forward pass of one (1, 1, size, size) image, as counted by torch."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    try:
        with torch.no_grad(), counter:
            model.eval()
            device = next(model.parameters()).device
            model(torch.zeros(1, 1, size, size, device=device))
    except Exception:  # a model the counter cannot trace: report unknown, never fail the run
        return None
    return round(counter.get_total_flops() / 1e9, 4)


def validate(registry: Registry, cfg: RunConfig) -> None:
    """Every name in the config exists, before anything runs or is stored."""
    for key in ("model", "strategy", "dataset"):
        if not getattr(cfg, key):
            raise UserError(f"no {key} given: use --{key}, or set {key} in the [run] table of "
                            f"the profile or of the --config file")
    get_backend(registry, cfg.backend)  # first: "not installed" says more than "no model"
    run_execution(registry, cfg)  # a device this machine lacks, before anything is stored
    spec = registry.model(cfg.model, cfg.backend)
    problem = spec.side_problem(cfg.data.image_size)
    if problem:  # before the first batch meets a pooling layer with nothing left to pool
        raise UserError(f"[data] image_size {cfg.data.image_size}: model '{cfg.model}' takes "
                        f"slice sides that are {spec.sizes_text()}; {cfg.data.image_size} "
                        f"{problem} (set [data] image_size = {spec.fitting_side(cfg.data.image_size)}"
                        f" in a --config file, or choose another profile)")
    check_strategy_options(registry, cfg.strategy, cfg.strategy_options)
    registry.dataset(cfg.dataset.partition(":")[0])
    if cfg.weights:
        read_state_dict(cfg.weights)  # a missing or corrupt file fails before anything runs
    if cfg.eval.robustness:  # corruption names and severities, before any training
        validate_robustness(registry, cfg)
    keys: dict[str, str] = {}
    for name in cfg.eval.datasets:
        registry.dataset(name.partition(":")[0])
        if name == cfg.dataset:
            raise UserError(f"--eval-dataset {name}: that is the training dataset, whose test "
                            f"and shift splits every run scores already")
        key = eval_dataset_key(name)
        if key in keys:
            raise UserError(f"--eval-dataset: '{keys[key]}' and '{name}' would share the "
                            f"metric prefix '{key}_'")
        keys[key] = name


def eval_dataset_key(name: str) -> str:
    """The metric-key prefix of an evaluation dataset: its name, with a path argument by its
    last component, lower case, anything but letters and digits as '_' (``example`` ->
    ``example``, ``nifti:/data/My Scans/`` -> ``nifti_my_scans``)."""
    base, _, argument = name.partition(":")
    if argument:
        base = f"{base}_{Path(argument.rstrip('/')).name or argument}"
    return re.sub(r"[^0-9a-z]+", "_", base.lower()).strip("_")


def evaluation_subjects(extra: Dataset, trained_on: Dataset) -> tuple[list, int]:
    """The labelled subjects of ``extra`` (every split but ``unlabelled``) that the model did
    not train or validate on, and how many were left out for that reason (datasets that share
    people, as ``phantom`` and ``phantom-s`` do)."""
    seen = {s.subject_id for split in ("train", "val", "unlabelled") if trained_on.has_split(split)
            for s in trained_on.split(split)}
    subjects, left_out, taken = [], 0, set()
    for split, members in extra.splits.items():
        if split == "unlabelled":
            continue
        for subject in members:
            if subject.subject_id in seen:
                left_out += 1
            elif subject.subject_id not in taken:
                taken.add(subject.subject_id)
                subjects.append(subject)
    return subjects, left_out


def evaluate_split(model: Any, dataset: Dataset, split: str, registry: Registry,
                   cfg: RunConfig, reporter: Reporter, subjects: list | None = None,
                   prefix: str | None = None) -> tuple[list, dict[str, Any], Evaluation, list]:
    """Predict ``subjects`` (default: the dataset's ``split``) and score them per slice and
    per subject: (image rows, metrics, evaluation, subject rows); metric keys get ``prefix``
    (default: none for test, ``<split>_`` otherwise)."""
    subjects = dataset.split(split) if subjects is None else subjects
    reporter.start(f"predict {split}", len(subjects))
    predictions = []
    for subject in subjects:
        predictions.extend(predict_subjects(model, [subject.image], cfg.eval.batch_size,
                                            run_backend(registry, cfg)))
        reporter.advance(f"predict {split}")
    image_metrics = [m for m in registry.specs("metrics") if m.scope == "image"]
    rows = image_metric_rows(split, subjects, predictions, image_metrics, NUM_CLASSES)
    if prefix is None:
        prefix = "" if split == "test" else f"{split}_"
    metrics = aggregate(rows, image_metrics, NUM_CLASSES, prefix=prefix)
    subject_rows = subject_metric_rows(split, subjects, predictions, image_metrics, NUM_CLASSES)
    metrics.update(aggregate_subjects(subject_rows, image_metrics, NUM_CLASSES, prefix=prefix))
    evaluation = Evaluation(subjects, predictions, context={"split": split})
    return rows, metrics, evaluation, subject_rows


def execute(registry: Registry, cfg: RunConfig, store: Store, reporter: Reporter | None = None,
            matrix_key: str | None = None, save_weights: bool = True) -> RunResult:
    """Run one configuration and store it. User mistakes raise UserError before anything is
    stored; a failure after the run began is stored as ``failed`` with its error, then raised.
    The trained model is saved beside the store unless ``save_weights`` is False
    (:mod:`jmedbench.engine.trained`)."""
    reporter = reporter or Reporter()
    validate(registry, cfg)
    if save_weights:  # a store without a folder for weights says so now, not after training
        store.require_artifacts()
    eval_sets = load_eval_datasets(registry, cfg)
    configure_threads()
    timer = Timer()
    recorded = {**provenance.collect(registry),
                "model": provenance.model_provenance(registry, cfg.model, cfg.backend),
                "execution": run_execution(registry, cfg).to_dict()}
    run_id = store.begin_run(cfg.to_dict(), recorded, matrix_key=matrix_key)
    try:
        result = _execute(registry, cfg, reporter, timer, run_id, store, eval_sets)
    except BaseException as exc:
        message = f"{type(exc).__name__}: {exc}"
        if not isinstance(exc, (UserError, KeyboardInterrupt)):
            message += "\n" + traceback.format_exc(limit=8)
        store.fail_run(run_id, message, timer.seconds)
        raise
    trained = result.details.pop("_trained")
    with timer.stage("store"):
        store.finish_run(run_id, metrics=result.metrics, timings=timer.seconds,
                         details=result.details, image_rows=result.details.pop("_rows"),
                         subject_rows=result.details.pop("_subject_rows"))
    if save_weights:
        result.warnings += save_run_weights(store, run_id, cfg, trained)
    result.timings = timer.seconds
    result.warnings += registry.notify_run_finished(store.get_run(run_id))
    return result


def load_eval_datasets(registry: Registry, cfg: RunConfig) -> dict[str, Dataset]:
    """The ``--eval-dataset`` datasets, built before the run begins: a missing file or a bad
    option is a user error that stores nothing and trains nothing."""
    return {name: build_dataset(registry, cfg, name) for name in cfg.eval.datasets}


def _execute(registry: Registry, cfg: RunConfig, reporter: Reporter, timer: Timer,
             run_id: str, store: Store | None = None,
             eval_sets: dict[str, Dataset] | None = None) -> RunResult:
    done = train_model(registry, cfg, reporter, timer)
    model, dataset, strategy, backend, trained = (done.model, done.dataset, done.strategy,
                                                  done.backend, done.result)
    rows: list = []
    subject_rows: list = []
    metrics: dict[str, Any] = {}
    details: dict[str, Any] = {"train": {"steps": trained.steps, "losses": trained.losses,
                                         "images_per_second": trained.images_per_second,
                                         "peak_device_mib": trained.peak_device_mib,
                                         "class_weights": trained.class_weights},
                               "execution": done.execution.to_dict(),
                               "budget": done.context.budget, "strategy": strategy.describe(),
                               "dataset": dataset.summary(),
                               "params": backend.num_parameters(model),
                               "gflops": (forward_gflops(model, cfg.data.image_size)
                                          if cfg.backend == "torch" else None)}
    warnings: list[str] = []
    dataset_level = [m for m in registry.specs("metrics") if m.scope == "dataset"]
    evaluations: dict[str, Evaluation] = {}
    with timer.stage("evaluate"):
        for split in ("test", "shift"):
            if not dataset.has_split(split):
                continue
            split_rows, split_metrics, evaluation, scored = evaluate_split(
                model, dataset, split, registry, cfg, reporter)
            rows += split_rows
            metrics.update(split_metrics)
            evaluations[split] = evaluation
            prefix = "" if split == "test" else f"{split}_"
            per_subject: dict[str, dict[str, Any]] = {}
            extra, problems = dataset_metrics(evaluation, dataset_level, prefix, details,
                                              per_subject)
            subject_rows += add_subject_values(scored, per_subject)
            metrics.update(extra)
            warnings += problems
        for name, extra_dataset in (eval_sets or {}).items():
            key = eval_dataset_key(name)
            subjects, left_out = evaluation_subjects(extra_dataset, dataset)
            if left_out:
                warnings.append(f"--eval-dataset {name}: {left_out} subject(s) left out, the "
                                f"model trained or validated on them")
            if not subjects:
                warnings.append(f"--eval-dataset {name}: no labelled subject to score")
                continue
            split_rows, split_metrics, evaluation, scored = evaluate_split(
                model, dataset, f"eval:{key}", registry, cfg, reporter, subjects=subjects,
                prefix=f"{key}_")
            rows += split_rows
            metrics.update(split_metrics)
            per_subject = {}
            extra, problems = dataset_metrics(evaluation, dataset_level, f"{key}_", details,
                                              per_subject)
            subject_rows += add_subject_values(scored, per_subject)
            metrics.update(extra)
            warnings += [f"--eval-dataset {name}: {p}" for p in problems]
        details["eval_datasets"] = {eval_dataset_key(n): n for n in cfg.eval.datasets}
    if cfg.eval.robustness:
        with timer.stage("robustness"):
            robust = evaluate_robustness(model, evaluations["test"], registry, cfg, reporter,
                                         store=store)
        metrics.update(robust.pop("summary"))
        details["robustness"] = robust
    details["_rows"] = rows
    details["_subject_rows"] = subject_rows
    details["_trained"] = done  # for execute to save the weights; never stored
    details["warnings"] = warnings
    return RunResult(run_id=run_id, metrics=metrics, timings=timer.seconds, details=details,
                     warnings=warnings)
