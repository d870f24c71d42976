"""A cohort from a dataset's subjects (``jmedbench cohort --dataset``): BMD per person from the
ground-truth masks, or from the masks of a model trained exactly as ``jmedbench run`` trains
it (``--model``), then the age regressions of :mod:`jmedbench.density.cohort`, next to the law
the dataset says it was generated from."""

from __future__ import annotations

from dataclasses import dataclass, field
import numpy as np

from jmedbench.config import RunConfig
from jmedbench.data import Dataset
from jmedbench.density.cohort import (CohortResult, cohort_from_masks, cohort_statistics,
                                      fit_age_line, normalise_sex)
from jmedbench.engine.build import build_dataset
from jmedbench.engine.pipeline import TrainedModel, predict_subjects, train_model
from jmedbench.engine.progress import Reporter
from jmedbench.engine.run import validate
from jmedbench.errors import UserError
from jmedbench.labels import STORED_VALUE_OFFSET
from jmedbench.registry import Registry

MODEL_DEFAULT_SPLITS = ("val", "test", "shift")  # subjects a trained model has not seen


@dataclass
class DatasetCohort:
    """The regressions, where the masks came from, who was left out and why, and per
    (sex, site) the law to compare with (see :func:`reference_laws`)."""

    result: CohortResult
    title: str
    source: dict[str, str]
    left_out: list[str] = field(default_factory=list)
    laws: dict[tuple[str, str], dict[str, float]] = field(default_factory=dict)


def dataset_cohort(registry: Registry, cfg: RunConfig, *, with_model: bool,
                   splits: str | None = None, stored_values: bool = False,
                   reporter: Reporter | None = None) -> DatasetCohort:
    """The cohort of ``cfg.dataset``'s subjects in ``splits`` (a comma list, ``all``, or None:
    every split with ground truth, or with a model the splits it was not trained on)."""
    if with_model:
        validate(registry, cfg)
        trained = train_model(registry, cfg, reporter)
        dataset, masks_by_split = trained.dataset, predict_labelled_splits(
            trained, cfg.eval.batch_size)
        source = {"dataset": cfg.dataset, "masks": f"model {cfg.model} ({cfg.strategy}, "
                                                   f"{cfg.train.steps} steps, seed {cfg.seed})"}
    else:
        dataset = build_dataset(registry, cfg)
        masks_by_split = None
        source = {"dataset": cfg.dataset, "masks": "ground truth"}
    chosen = pick_splits(dataset, splits, default=MODEL_DEFAULT_SPLITS if with_model else None)
    offset = STORED_VALUE_OFFSET if stored_values else 0.0
    subjects, masks = [], []
    for split in chosen:
        for i, subject in enumerate(dataset.split(split)):
            subjects.append(subject)
            masks.append(masks_by_split[split][i] if masks_by_split else subject.label)
    members, left_out = cohort_from_masks(subjects, masks, stored_offset=offset)
    unit = "stored value (HU+1024)" if stored_values else "HU"
    result = cohort_statistics(members, small_groups="skip", stored_offset=offset, unit=unit,
                               source=f"dataset {cfg.dataset} (splits {', '.join(chosen)})")
    source["splits"] = ",".join(chosen)
    return DatasetCohort(result, f"{cfg.dataset}: BMD from {source['masks']}", source,
                         left_out, reference_laws(dataset, subjects, offset))


def pick_splits(dataset: Dataset, text: str | None, default: tuple[str, ...] | None) -> list[str]:
    available = [s for s, subjects in dataset.splits.items() if subjects]
    if text is None or text == "all":
        chosen = [s for s in (default or available) if s in available] \
            if text is None else available
        if not chosen:
            raise UserError(f"dataset has no subjects in splits {', '.join(default or [])} "
                            f"(it has: {', '.join(available)}); use --splits")
        return chosen
    chosen = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in dataset.splits]
    if unknown or not chosen:
        raise UserError(f"--splits {text}: unknown split(s) {', '.join(unknown) or '(none)'} "
                        f"(the dataset has: {', '.join(dataset.splits)})")
    return chosen


def predict_labelled_splits(trained: TrainedModel, batch_size: int
                            ) -> dict[str, list[np.ndarray]]:
    """The trained model's label maps of every subject of every labelled split."""
    return {split: predict_subjects(trained.model, [s.image for s in subjects], batch_size,
                                    trained.backend)
            for split, subjects in trained.dataset.splits.items()
            if split != "unlabelled" and subjects}


def reference_laws(dataset: Dataset, subjects: list, offset: float
                   ) -> dict[tuple[str, str], dict[str, float]]:
    """What a measured cohort should recover, per sex x site, where the dataset knows it:
    ``k_true``/``Z_true``, the least-squares line of the subjects' true BMDs (phantoms), and
    ``k_law``/``Z_law``, the law the dataset declares it generated from
    (``info["age_law_stored_values"]``, keys like "FN", in stored values HU + 1024)."""
    laws: dict[tuple[str, str], dict[str, float]] = {}
    groups: dict[tuple[str, str], list] = {}
    for s in subjects:
        if s.true_bmd is not None and s.age is not None and s.sex is not None:
            groups.setdefault((normalise_sex(s.sex), s.site or "-"), []).append(s)
    for key, members in groups.items():
        if len(members) >= 3:
            line = fit_age_line([m.age for m in members], [m.true_bmd + offset for m in members])
            laws.setdefault(key, {}).update({"k_true": line.k, "Z_true": line.Z})
    declared = getattr(dataset, "info", {}).get("age_law_stored_values") or {}
    for code, law in declared.items():
        try:
            key = (normalise_sex(code[0]), code[1:])
            laws.setdefault(key, {}).update({
                "k_law": float(law["k"]),
                "Z_law": float(law["Z"]) - STORED_VALUE_OFFSET + offset})
        except (KeyError, TypeError, ValueError, IndexError):
            continue  # a dataset's own format we do not understand: nothing to compare
    return laws
