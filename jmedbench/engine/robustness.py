"""Scoring a trained model under corruptions: the severity protocol, mPC / rPC / mCE, and BMD
under shift.

Protocol (one run): the test subjects (the first ``eval.robustness_subjects``, 0 = all) are
corrupted slice by slice by every chosen corruption (``eval.robustness``: family names,
corruption names or ``all``) at every severity in ``eval.severities``, with
``numpy.random.default_rng([seed, crc32(name), severity])`` (no Python ``hash``: the same
corrupted images in every process). The model predicts them; the registry's image metrics score
the predictions against the (moved, for geometric corruptions) label maps, and its
dataset-scope metrics (BMD) read the HU of the corrupted images. Where a corruption destroys the
HU scale without recalibration (``density="not_applicable"``), the dataset metrics are ``None``
with the reason, never a number.

Summaries (Hendrycks & Dietterich 2019), with the headline metric (the one a metric plugin
marks ``headline``; Dice with the first-party metrics) as performance P and 1 - P as error.
With Dice:

- ``mpc_dice``: mean Dice over corruptions and severities (mean performance under corruption);
  ``rpc_dice = mpc_dice / clean Dice`` on the same subjects (relative performance);
  ``mpc_dice_<family>``, ``rpc_dice_<family>`` per family.
- ``mce``: mean over corruptions of ``CE_c = sum_s (1 - Dice_{c,s}) / sum_s (1 - Dice^UNet_{c,s})``
  where the reference is the reference model with the reference strategy (the ones their
  plugins mark ``reference``: ``unet`` / ``baseline``) scored under
  the same protocol (dataset, profile, image size, severities, subjects) and found in the
  results store (same seed preferred, else the latest). The UNet baseline's own mCE is 1. With
  no such run, ``mce`` is ``None`` and ``details["robustness"]["mce"]["reason"]`` says why;
  ``mce_<family>`` needs every corruption of that family in the reference.
- ``mpc_<key>`` for every dataset metric ending in ``_mae`` (e.g. ``mpc_bmd_mae``): its mean over
  the corruptions and severities where density is scored.
"""

from __future__ import annotations

import dataclasses
import zlib
from typing import Any

import numpy as np

from jmedbench.config import RunConfig
from jmedbench.data import Evaluation, Subject
from jmedbench.engine.evaluate import aggregate, dataset_metrics, image_metric_rows
from jmedbench.engine.pipeline import predict_subjects, run_backend
from jmedbench.engine.progress import Reporter
from jmedbench.errors import UnknownNameError, UserError
from jmedbench.labels import NUM_CLASSES
from jmedbench.registry import Registry, suggest
from jmedbench.specs import CorruptionSpec
from jmedbench.stats import finite_mean

ALL = "all"
NOT_APPLICABLE = ("density not applicable: this corruption destroys the HU scale and no "
                  "recalibration from reference tissues can undo it (see the corruption's "
                  "description)")


# -- choosing corruptions ----------------------------------------------------------------------
def resolve_corruptions(registry: Registry, names: list[str]) -> list[CorruptionSpec]:
    """The corruptions named by families, names or ``all``, in family then name order.

    Unknown names raise :class:`UnknownNameError` with the closest family or corruption name.
    """
    specs = registry.specs("corruptions")
    families = sorted({s.family for s in specs})
    wanted: dict[str, CorruptionSpec] = {}
    for raw in names:
        name = str(raw).strip()
        if not name:
            continue
        if name == ALL:
            chosen = specs
        elif name in families:
            chosen = [s for s in specs if s.family == name]
        elif name in registry.names("corruptions"):
            chosen = [registry.corruption(name)]
        else:
            candidates = families + registry.names("corruptions") + [ALL]
            raise UnknownNameError("corruption or family (eval.robustness)", name,
                                   suggest(name, candidates), families + [ALL])
        wanted.update({s.name: s for s in chosen})
    if not wanted and names:
        raise UserError("eval.robustness: no corruptions are registered (is the "
                        "jmedbench_corruptions plugin installed? see jmedbench plugins)")
    order = {f: i for i, f in enumerate(families)}
    return sorted(wanted.values(), key=lambda s: (order[s.family], s.name))


def check_severities(severities: list[Any], specs: list[CorruptionSpec]) -> list[int]:
    """Severities as sorted unique integers, each 1..the corruptions' maximum."""
    out = []
    for value in severities:
        if isinstance(value, bool) or not isinstance(value, int):
            raise UserError(f"eval.severities: {value!r} is not an integer")
        if value < 1:
            raise UserError(f"eval.severities: {value} (severity 0 is the clean image, which is "
                            "always scored; use 1..5)")
        out.append(value)
    if not out:
        raise UserError("eval.severities is empty: give at least one severity, e.g. [1, 3, 5]")
    top = max((s.severities for s in specs), default=5)
    too_high = [v for v in out if v > top]
    if too_high:
        raise UserError(f"eval.severities: {too_high[0]} is above the highest severity ({top})")
    return sorted(set(out))


def validate(registry: Registry, cfg: RunConfig) -> None:
    """Check ``eval.robustness`` and ``eval.severities`` before a run trains anything."""
    if cfg.eval.robustness:
        check_severities(cfg.eval.severities, resolve_corruptions(registry, cfg.eval.robustness))
        if cfg.eval.robustness_subjects < 0:
            raise UserError("eval.robustness_subjects must be 0 (all test subjects) or more")


def stable_id(name: str) -> int:
    """A process-independent integer for a corruption name (CRC-32)."""
    return zlib.crc32(name.encode("utf-8"))


def corruption_rng(seed: int, name: str, severity: int) -> np.random.Generator:
    return np.random.default_rng([seed, stable_id(name), severity])


def corrupt_subject(spec: CorruptionSpec, subject: Subject, severity: int,
                    rng: np.random.Generator) -> Subject:
    """A copy of ``subject`` with every slice (and, if geometric, its label map) corrupted."""
    images, labels = [], []
    for image, label in zip(subject.image, subject.label):
        out, out_label = spec.apply(image, label, severity, rng)
        images.append(out)
        labels.append(out_label)
    return dataclasses.replace(subject, image=np.stack(images).astype(np.float32),
                               label=np.stack(labels).astype(np.uint8),
                               meta={**subject.meta, "corruption": spec.name,
                                     "severity": severity})


# -- the evaluation ----------------------------------------------------------------------------
def evaluate_robustness(model: Any, evaluation: Evaluation, registry: Registry, cfg: RunConfig,
                        reporter: Reporter | None = None, store: Any = None,
                        predict: Any = None) -> dict[str, Any]:
    """Score ``model`` on corrupted copies of the subjects of ``evaluation`` (the clean test
    split with its predictions).

    Returns ``{"summary": flat metrics, ...details}``; the engine merges ``summary`` into the
    run's metrics and stores the rest as ``details["robustness"]``. ``store`` is where the
    reference run is looked up for mCE; ``predict(model, images, batch_size)`` defaults to the
    engine's prediction with the run's backend.
    """
    reporter = reporter or Reporter()
    specs = resolve_corruptions(registry, cfg.eval.robustness)
    severities = check_severities(cfg.eval.severities, specs)
    if predict is None:
        backend = run_backend(registry, cfg)
        predict = lambda model, images, size: predict_subjects(model, images, size, backend)
    count = cfg.eval.robustness_subjects or len(evaluation.subjects)
    subjects = evaluation.subjects[:count]
    clean_predictions = evaluation.predictions[:count]
    if not subjects:
        raise UserError("robustness: the dataset has no test subjects to corrupt")
    image_metrics = [m for m in registry.specs("metrics") if m.scope == "image"]
    dataset_level = [m for m in registry.specs("metrics") if m.scope == "dataset"]
    headline = registry.flagged("metrics", "headline").name
    warnings: list[str] = []

    clean_rows = image_metric_rows("test", subjects, clean_predictions, image_metrics, NUM_CLASSES)
    clean = _compact(aggregate(clean_rows, image_metrics, NUM_CLASSES))
    clean_density, problems = dataset_metrics(
        Evaluation(subjects, clean_predictions, context={"split": "test"}), dataset_level)
    clean.update(clean_density)
    warnings += problems
    density_keys = sorted(clean_density)

    table: list[dict[str, Any]] = []
    total = sum(1 for s in specs for v in severities if v <= s.severities)
    reporter.start("robustness", total)
    for spec in specs:
        for severity in [v for v in severities if v <= spec.severities]:
            rng = corruption_rng(cfg.seed, spec.name, severity)
            corrupted = [corrupt_subject(spec, subject, severity, rng) for subject in subjects]
            # one call for all subjects' slices: full batches, then split per subject
            stacked = predict(model, [np.concatenate([c.image for c in corrupted])],
                              cfg.eval.batch_size)[0]
            predictions = np.split(stacked, np.cumsum([c.n_slices for c in corrupted])[:-1])
            rows = image_metric_rows("test", corrupted, predictions, image_metrics, NUM_CLASSES)
            entry: dict[str, Any] = {"corruption": spec.name, "family": spec.family,
                                     "severity": severity, "density": spec.density,
                                     **_compact(aggregate(rows, image_metrics, NUM_CLASSES))}
            if dataset_level:
                if spec.density == "not_applicable":
                    entry.update({key: None for key in density_keys})
                    entry["density_note"] = NOT_APPLICABLE
                else:
                    shifted = Evaluation(corrupted, predictions,
                                         images=[c.image for c in corrupted],
                                         context={"split": "test", "corruption": spec.name,
                                                  "severity": severity})
                    values, problems = dataset_metrics(shifted, dataset_level)
                    entry.update(values)
                    warnings += [f"{spec.name} severity {severity}: {p}" for p in problems]
                    if spec.density == "recalibrate":
                        entry["density_note"] = "HU recalibrated from reference tissues"
            table.append(entry)
            reporter.advance("robustness", note=f"{spec.name} s{severity}")
    reporter.finish("robustness")

    result = summarise(table, clean, specs, severities, headline)
    mce = compare_to_baseline(result["corruptions"], specs, cfg, store, reference_entry(registry))
    result["summary"].update(mce.pop("summary"))
    result["mce"] = mce
    if mce.get("reason"):
        reporter.log(f"robustness: mCE not computed: {mce['reason']}")
    result["protocol"] = protocol(cfg, specs, severities, len(subjects))
    result["clean"] = clean
    result["table"] = table
    result["warnings"] = warnings
    return result


def _compact(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if not k.endswith("_undefined")}


def protocol(cfg: RunConfig, specs: list[CorruptionSpec], severities: list[int],
             subjects: int) -> dict[str, Any]:
    """What a reference run must share for its errors to be comparable (mCE)."""
    return {"dataset": cfg.dataset, "profile": cfg.profile, "image_size": cfg.data.image_size,
            "severities": severities, "subjects": subjects,
            "robustness_subjects": cfg.eval.robustness_subjects,
            "corruptions": [s.name for s in specs]}


# -- summaries ---------------------------------------------------------------------------------
def summarise(table: list[dict[str, Any]], clean: dict[str, Any], specs: list[CorruptionSpec],
              severities: list[int], headline: str) -> dict[str, Any]:
    """mPC / rPC of the ``headline`` metric overall and per family, CE per corruption, mean BMD
    errors under corruption."""
    clean_value = clean.get(headline)
    summary: dict[str, Any] = {}
    per_corruption: dict[str, dict[str, Any]] = {}
    for spec in specs:
        rows = [r for r in table if r["corruption"] == spec.name]
        values = [r[headline] for r in rows]
        per_corruption[spec.name] = {
            "family": spec.family, "density": spec.density, "geometric": spec.geometric,
            headline: values, "severities": [r["severity"] for r in rows],
            f"mean_{headline}": finite_mean(values),
            "ce": float(np.sum([1.0 - v for v in values])) if _finite(values) else None}

    def performance(rows: list[dict[str, Any]], suffix: str) -> None:
        mpc = finite_mean([r[headline] for r in rows])
        summary[f"mpc_{headline}{suffix}"] = mpc
        summary[f"rpc_{headline}{suffix}"] = (mpc / clean_value if mpc is not None and clean_value
                                              else None)
        for key in sorted({k for r in rows for k in r if k.endswith("_mae")}):
            summary[f"mpc_{key}{suffix}"] = finite_mean([r.get(key) for r in rows
                                                         if r["density"] != "not_applicable"])

    performance(table, "")
    families = {}
    for family in sorted({s.family for s in specs}):
        rows = [r for r in table if r["family"] == family]
        performance(rows, f"_{family}")
        families[family] = {
            "corruptions": [s.name for s in specs if s.family == family],
            f"{headline}_by_severity": {
                str(v): finite_mean([r[headline] for r in rows if r["severity"] == v])
                for v in severities}}
        for key in sorted({k for r in rows for k in r if k.endswith("_mae")}):
            families[family][f"{key}_by_severity"] = {
                str(v): finite_mean([r.get(key) for r in rows if r["severity"] == v
                                     and r["density"] != "not_applicable"]) for v in severities}
    return {"summary": summary, "corruptions": per_corruption, "families": families,
            f"clean_{headline}": clean_value}


def _finite(values: list[Any]) -> bool:
    return bool(values) and all(v is not None and np.isfinite(v) for v in values)


def reference_entry(registry: Registry) -> tuple[str, str]:
    """(model, strategy) the mCE is relative to: the ones their plugins mark ``reference``."""
    return (registry.flagged("models", "reference").name,
            registry.flagged("strategies", "reference").name)


# -- mCE against the reference run -------------------------------------------------------------
def compare_to_baseline(per_corruption: dict[str, dict[str, Any]], specs: list[CorruptionSpec],
                        cfg: RunConfig, store: Any, reference_entry: tuple[str, str]
                        ) -> dict[str, Any]:
    """mCE (overall and per family) relative to the corruption errors of the reference
    ``(model, strategy)`` (the UNet baseline with the first-party plugins)."""
    families = sorted({s.family for s in specs})
    empty = {"mce": None, **{f"mce_{f}": None for f in families}}
    if (cfg.model, cfg.strategy) == reference_entry:
        reference = {name: row["ce"] for name, row in per_corruption.items()}
        source: dict[str, Any] = {"baseline_run": "this run",
                                  "note": f"this run is the {'/'.join(reference_entry)} "
                                          "reference: its mCE is 1 by definition"}
    else:
        record, reason = find_baseline(store, cfg, list(per_corruption), reference_entry)
        if record is None:
            return {"summary": empty, "value": None, "baseline_run": None, "reason": reason}
        reference = {name: row.get("ce") for name, row in
                     record["details"]["robustness"]["corruptions"].items()}
        source = {"baseline_run": record["run_id"], "baseline_seed": record["seed"]}
    ratios: dict[str, float] = {}
    for name, row in per_corruption.items():
        base = reference.get(name)
        if row["ce"] is not None and base:
            ratios[name] = row["ce"] / base
    summary = dict(empty)
    missing = [n for n in per_corruption if n not in ratios]
    if not missing:
        summary["mce"] = float(np.mean(list(ratios.values())))
    for family in families:
        names = [s.name for s in specs if s.family == family]
        if all(n in ratios for n in names):
            summary[f"mce_{family}"] = float(np.mean([ratios[n] for n in names]))
    out = {"summary": summary, "value": summary["mce"], "ce_ratio": ratios, **source}
    if missing:
        out["reason"] = (f"baseline run {source['baseline_run']} has no usable error for "
                         f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
    return out


def find_baseline(store: Any, cfg: RunConfig, corruptions: list[str],
                  reference_entry: tuple[str, str]) -> tuple[dict[str, Any] | None, str]:
    """The completed run of the reference ``(model, strategy)`` scored under the same
    robustness protocol (same seed preferred, then the latest), or None and why not."""
    model, strategy = reference_entry
    what = (f"a completed '{model}' / '{strategy}' run on dataset "
            f"'{cfg.dataset}' (profile {cfg.profile}, image size {cfg.data.image_size}, "
            f"severities {sorted(set(cfg.eval.severities))}, robustness_subjects "
            f"{cfg.eval.robustness_subjects}) scored under these corruptions")
    if store is None:
        return None, f"no results store to look up {what} in"
    candidates = []
    for record in store.runs(status="completed"):
        if (record.get("model"), record.get("strategy"), record.get("dataset"),
                record.get("profile")) != (model, strategy, cfg.dataset, cfg.profile):
            continue
        robust = (record.get("details") or {}).get("robustness") or {}
        proto = robust.get("protocol") or {}
        if (proto.get("image_size") != cfg.data.image_size
                or proto.get("severities") != sorted(set(cfg.eval.severities))
                or proto.get("robustness_subjects") != cfg.eval.robustness_subjects):
            continue
        if not set(corruptions) & set(robust.get("corruptions") or {}):
            continue
        candidates.append(record)
    if not candidates:
        return None, (f"the store has no {what}: run `jmedbench run --model {model} "
                      f"--strategy {strategy} --profile {cfg.profile} --robustness "
                      "...` first")
    candidates.sort(key=lambda r: (r.get("seed") == cfg.seed, r.get("created") or 0))
    return candidates[-1], ""
