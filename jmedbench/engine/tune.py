"""Hyper-parameter tuning with Optuna: one study per (model, strategy, dataset, profile), the
model's and strategy's declared search spaces plus the learning rate, the profile's step budget
for every trial (the same for every model), the headline metric (Dice) on the validation split
as the objective, median pruning on its intermediate values.

Scale-out is Optuna's own: any number of ``jmedbench tune`` processes, on one or many machines,
given the same ``--storage`` and study name share the study; ``--trials`` is the total over all
of them (MaxTrialsCallback). Storage URLs: ``journal:PATH`` (a journal file, safe for several
processes on one machine), ``sqlite:///PATH``, ``postgresql://user:pass@host/db`` (many machines).
"""

from __future__ import annotations

import copy
import os
import socket
import time
from dataclasses import dataclass
from typing import Any

import optuna

from jmedbench.config import RunConfig
from jmedbench.engine.build import build_dataset, build_strategy
from jmedbench.engine.evaluate import aggregate, image_metric_rows
from jmedbench.engine.pipeline import predict_subjects, run_backend, train_model
from jmedbench.engine.progress import Reporter
from jmedbench.errors import UserError
from jmedbench.labels import NUM_CLASSES
from jmedbench.registry import Registry
from jmedbench.specs import SearchSpace

LR_SPACE: SearchSpace = {"lr": ("float", 1e-4, 3e-3, True)}


def open_storage(url: str | None) -> Any:
    """An Optuna storage from a URL; one clear line when it cannot be reached."""
    if url is None:
        return None  # in-memory: one process only
    try:
        if url.startswith("journal:"):
            from optuna.storages import JournalStorage
            from optuna.storages.journal import JournalFileBackend
            return JournalStorage(JournalFileBackend(url.removeprefix("journal:")))
        return _open_rdb(url)
    except Exception as exc:  # sqlalchemy/driver errors: unreachable host, bad URL, no driver
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"--storage {url}: cannot open ({reason})") from None


SCHEMA_RACE_ATTEMPTS = 5


def _open_rdb(url: str) -> Any:
    """Optuna's RDB storage. Workers started together on a new database all create Optuna's
    tables; PostgreSQL lets one win and fails the others with a unique violation on its catalog
    (measured: two workers on a fresh database failed so every time). The tables exist then, so
    the losers open again after a short wait."""
    import sqlalchemy.exc

    for attempt in range(1, SCHEMA_RACE_ATTEMPTS):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs={"pool_pre_ping": True})
        except sqlalchemy.exc.IntegrityError:
            time.sleep(0.5 * attempt)
    return optuna.storages.RDBStorage(url, engine_kwargs={"pool_pre_ping": True})


def suggest(trial: optuna.Trial, name: str, entry: tuple) -> Any:
    kind = entry[0]
    if kind == "float":
        return trial.suggest_float(name, entry[1], entry[2], log=bool(entry[3]) if len(entry) > 3 else False)
    if kind == "int":
        return trial.suggest_int(name, entry[1], entry[2])
    if kind == "categorical":
        return trial.suggest_categorical(name, list(entry[1]))
    raise UserError(f"search space entry {name}: unknown kind {kind!r}")


def search_space(registry: Registry, cfg: RunConfig) -> tuple[SearchSpace, SearchSpace]:
    """(model space, strategy-and-training space) as declared by the plugins."""
    spec = registry.model(cfg.model, cfg.backend)
    strategy = build_strategy(registry, cfg.strategy, cfg.strategy_options)
    return dict(spec.search_space), {**LR_SPACE, **strategy.search_space()}


@dataclass
class TuneResult:
    study_name: str
    best_value: float | None
    best_params: dict[str, Any]
    trials: dict[str, int]


def objective_factory(registry: Registry, base: RunConfig, eval_every: int, reporter: Reporter):
    """The objective of a study: each trial trains exactly as ``jmedbench run`` does (the
    engine's :func:`~jmedbench.engine.pipeline.train_model`: backend, ``--weights``, the
    dataset's unlabelled split for pre-training) and is scored by the headline metric on the
    validation split, reported every ``eval_every`` steps for pruning."""
    model_space, train_space = search_space(registry, base)
    dataset = build_dataset(registry, base)  # the same data for every trial
    val_subjects = dataset.split("val")
    headline = registry.flagged("metrics", "headline")

    def objective(trial: optuna.Trial) -> float:
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        cfg = copy.deepcopy(base)
        for name, entry in model_space.items():
            cfg.model_options.setdefault(cfg.model, {})[name] = suggest(trial, name, entry)
        for name, entry in train_space.items():
            value = suggest(trial, name, entry)
            if name == "lr":
                cfg.train.lr = value
            else:
                cfg.strategy_options[name] = value
        backend = run_backend(registry, cfg)

        def validate(model: Any) -> float:
            preds = predict_subjects(model, [s.image for s in val_subjects],
                                     cfg.eval.batch_size, backend)
            rows = image_metric_rows("val", val_subjects, preds, [headline], NUM_CLASSES)
            return aggregate(rows, [headline], NUM_CLASSES)[headline.name]

        def on_log(step: int, loss: float, model: Any) -> None:
            if step % eval_every == 0 and step < cfg.train.steps:
                trial.report(validate(model), step)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"pruned at step {step}")

        done = train_model(registry, cfg, dataset=dataset, log_every=eval_every, on_log=on_log)
        value = validate(done.model)
        reporter.advance("tune", note=f"trial {trial.number}: val {headline.name} {value:.4f}")
        return value

    return objective


def run_study(registry: Registry, cfg: RunConfig, trials: int, storage_url: str | None,
              study_name: str | None, reporter: Reporter, eval_every: int | None = None
              ) -> TuneResult:
    registry.model(cfg.model, cfg.backend)
    if trials < 1:
        raise UserError("--trials must be at least 1")
    storage = open_storage(storage_url)
    name = study_name or f"{cfg.model}-{cfg.strategy}-{cfg.dataset}-{cfg.profile}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    eval_every = eval_every or max(10, cfg.train.steps // 5)
    try:
        study = optuna.create_study(
            study_name=name, storage=storage, load_if_exists=True,
            direction="maximize" if registry.flagged("metrics", "headline").higher_is_better
            else "minimize",
            sampler=optuna.samplers.TPESampler(seed=cfg.seed),
            pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=eval_every))
    except Exception as exc:
        raise UserError(f"--storage {storage_url}: cannot create study '{name}' "
                        f"({str(exc).splitlines()[0]})") from None
    objective = objective_factory(registry, cfg, eval_every, reporter)
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    reporter.start("tune", trials)
    study.optimize(objective, n_trials=trials,
                   callbacks=[optuna.study.MaxTrialsCallback(trials, states=states)])
    reporter.finish("tune")
    counts: dict[str, int] = {}
    for t in study.trials:
        counts[t.state.name.lower()] = counts.get(t.state.name.lower(), 0) + 1
    try:
        best = study.best_trial
        return TuneResult(name, best.value, best.params, counts)
    except ValueError:  # no completed trial (all pruned or failed)
        return TuneResult(name, None, {}, counts)
