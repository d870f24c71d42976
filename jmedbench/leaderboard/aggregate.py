"""Leaderboard entries from the results store: completed runs grouped by model x strategy x
dataset x profile x backend, each metric aggregated over seeds (mean and 95% t-interval)."""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from typing import Any

from jmedbench.registry import Registry, get_registry
from jmedbench.stats import mean_ci
from jmedbench.store import Store


def collect_entries(store: Store, registry: Registry | None = None) -> list[dict[str, Any]]:
    return entries_from_runs(store.runs(kind="run", status="completed"), registry)


def entries_from_runs(completed: list[dict[str, Any]], registry: Registry | None = None
                      ) -> list[dict[str, Any]]:
    """Leaderboard entries (aggregated over seeds, ranked by the headline metric) from
    completed run records; with a ``registry``, each names its model's family and citation."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for record in completed:
        key = (record["model"], record["strategy"], record["dataset"], record["profile"],
               record["backend"] or "torch")
        groups[key].append(record)
    entries = []
    for (model, strategy, dataset, profile, backend), records in sorted(groups.items()):
        latest = {}
        for r in records:  # one run per seed: the latest
            latest[r["seed"]] = r
        records = [latest[s] for s in sorted(latest)]
        names = sorted({k for r in records for k, v in (r["metrics"] or {}).items()
                        if isinstance(v, (int, float)) and not k.endswith("_undefined")})
        metrics = {name: mean_ci([(r["metrics"] or {}).get(name) for r in records])
                   for name in names}
        details = [r["details"] or {} for r in records]
        params = details[-1].get("params")
        prov = records[-1]["provenance"] or {}
        model_prov = prov.get("model") or {}  # stored by runs since 2026-12-01
        executions = {execution_label(r["provenance"] or {}) for r in records}
        entry = {
            "model": model, "strategy": strategy, "dataset": dataset, "profile": profile,
            "backend": backend, "seeds": sorted(latest), "runs": [r["run_id"] for r in records],
            "metrics": metrics,
            "params": params, "params_m": params / 1e6 if params else None,
            "gflops": details[-1].get("gflops"),
            # a speed is a mean over seeds run on one device in one format, else unknown
            "train_images_per_s": (mean_ci([d.get("train", {}).get("images_per_second")
                                            for d in details])["mean"]
                                   if len(executions) == 1 else None),
            "execution": ", ".join(sorted(executions)),
            "budget": details[-1].get("budget"),
            # the model's own libraries (smp, MONAI, ...) beside the core's versions
            "versions": {**(prov.get("versions") or {}),
                         **{k: v for k, v in model_prov.get("libraries", {}).items() if v}
                         } or None,
            "plugin": model_prov.get("plugin"),
            "git_commit": prov.get("git_commit"),
            "hardware": {"cpu": prov.get("cpu"), "cpu_count": prov.get("cpu_count"),
                         "torch_threads": prov.get("torch_threads"),
                         "platform": prov.get("platform")},
            "date": dt.datetime.fromtimestamp(max(r["finished"] or r["created"] for r in records),
                                              dt.timezone.utc).isoformat(timespec="seconds"),
        }
        if registry is not None:
            try:
                spec = registry.model(model, backend)
                entry["family"], entry["citation"] = spec.family, spec.citation
                # runs stored before they recorded their model's plugin
                entry["plugin"] = entry["plugin"] or registry.owner("models", model, backend)
            except Exception:  # a model whose plugin is not installed here any more
                entry["family"], entry["citation"] = None, None
        entries.append(entry)
    headline = (registry or get_registry()).flagged("metrics", "headline")
    sign = -1 if headline.higher_is_better else 1
    entries.sort(key=lambda e: sign * (entry_mean(e, headline.name) or -1))
    return entries


def execution_label(provenance: dict[str, Any]) -> str:
    """Where a run trained, e.g. ``cuda:0 bf16 (NVIDIA H200)``; runs stored before devices
    existed ran on the CPU in fp32."""
    execution = provenance.get("execution") or {}
    return (f"{execution.get('device', 'cpu')} {execution.get('precision', 'fp32')} "
            f"({execution.get('accelerator') or provenance.get('cpu') or 'unknown'})")


def entry_mean(entry: dict[str, Any], key: str) -> float | None:
    """The mean over seeds of one metric of an entry; None where no seed has it."""
    return entry["metrics"].get(key, {}).get("mean")


def entry_value(entry: dict[str, Any], key: str) -> Any:
    """A metric's mean over seeds, or one of the entry's own fields (params_m, gflops, ...)."""
    if key in entry["metrics"]:
        return entry_mean(entry, key)
    return entry.get(key)


def file_stem(*parts: str) -> str:
    """Parts joined by ``__``, every character a file name should not carry replaced by -."""
    return "__".join(re.sub(r"[^A-Za-z0-9_.+-]", "-", p) for p in parts)


def entry_id(entry: dict[str, Any]) -> str:
    """The entry's name in files and figures: model__strategy__dataset__profile__backend."""
    return file_stem(entry["model"], entry["strategy"], entry["dataset"], entry["profile"],
                     entry["backend"])


def entry_filename(entry: dict[str, Any]) -> str:
    return entry_id(entry) + ".json"
