"""Figures of the robustness suite: a gallery of one slice under every corruption and
severity, and a stored run's scores against severity, per family."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from jmedbench.config import build_config
from jmedbench.engine.build import build_dataset
from jmedbench.engine.robustness import corruption_rng
from jmedbench.errors import UserError
from jmedbench.labels import CANCELLOUS_LABEL
from jmedbench.registry import get_registry
from jmedbench.specs import Column

DISPLAY_WINDOW = (-1000.0, 1500.0)  # HU shown black .. white: air, fat, soft tissue and bone
GALLERY_PROFILE = "quick"


def gallery_slice(dataset: str | None = None, size: int = 128, seed: int = 0
                  ) -> tuple[np.ndarray, np.ndarray]:
    """The slice with the most cancellous bone of the first test subject (or first subject) of
    a dataset (default: the ``quick`` profile's), built with the ``quick`` profile's options."""
    cfg = build_config(GALLERY_PROFILE, overrides={"data.image_size": size, "seed": seed,
                                                   "dataset": dataset})
    data = build_dataset(get_registry(), cfg)
    split = next((s for s in ("test", "train", "shift", "val") if data.has_split(s)), None)
    if split is None:
        raise UserError(f"dataset '{dataset}' has no subjects to show")
    subject = data.split(split)[0]
    # The slice with the most cancellous bone: the vertebral body at its widest.
    index = int(np.argmax((subject.label == CANCELLOUS_LABEL).sum(axis=(1, 2))))
    return subject.image[index].astype(np.float32), subject.label[index].astype(np.uint8)


def render_gallery(image: np.ndarray, label: np.ndarray, specs: list, severities: list[int],
                   out: str | Path, seed: int = 0) -> dict[str, Any]:
    """Write a grid: one row per corruption, the clean slice then each severity, with the
    label map's outline (cortical red, cancellous yellow)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = 1 + len(severities)
    fig, axes = plt.subplots(len(specs), columns, figsize=(1.6 * columns, 1.7 * len(specs)),
                             squeeze=False)
    for row, spec in enumerate(specs):
        panels = [(image, label, "clean")]
        for severity in severities:
            out_image, out_label = spec.apply(image, label, severity,
                                              corruption_rng(seed, spec.name, severity))
            panels.append((out_image, out_label, f"s{severity}"))
        for col, (img, lab, title) in enumerate(panels):
            ax = axes[row][col]
            ax.imshow(img, cmap="gray", vmin=DISPLAY_WINDOW[0], vmax=DISPLAY_WINDOW[1],
                      interpolation="nearest")
            if (lab > 0).any():
                ax.contour(lab > 0, levels=[0.5], colors="red", linewidths=0.6)
            if (lab == CANCELLOUS_LABEL).any():
                ax.contour(lab == CANCELLOUS_LABEL, levels=[0.5], colors="yellow", linewidths=0.5)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(title, fontsize=7)
            if col == 0:
                ax.set_ylabel(f"{spec.name}\n({spec.family}, {spec.density})", fontsize=6)
    fig.suptitle(f"window {DISPLAY_WINDOW[0]:.0f}..{DISPLAY_WINDOW[1]:.0f} HU; outline: label "
                 "map after the corruption (red bone, yellow cancellous)", fontsize=7)
    fig.tight_layout()
    out = Path(out)
    if out.parent and not out.parent.exists():
        raise UserError(f"--out {out}: folder {out.parent} does not exist")
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return {"out": str(out), "corruptions": [s.name for s in specs], "severities": severities}


def stored_robustness(record: dict[str, Any]) -> dict[str, Any]:
    robust = (record.get("details") or {}).get("robustness")
    if not robust or "table" not in robust:
        raise UserError(f"run {record['run_id']} has no robustness results (run it with "
                        "`jmedbench run ... --robustness`)")
    return robust


def render_severity_plot(robust: dict[str, Any], out: str | Path, title: str,
                         panels: list[Column]) -> None:
    """Each of ``panels`` (the headline metric first) that the run scored, against severity,
    one line per family; severity 0 is the clean score on the same subjects."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = robust["table"]
    families = sorted({r["family"] for r in table})
    severities = robust["protocol"]["severities"]
    panels = [panels[0]] + [c for c in panels[1:]
                            if any(r.get(c.key) is not None for r in table)]
    fig, axes = plt.subplots(1, len(panels), figsize=(10 if len(panels) > 1 else 5.5, 4),
                             squeeze=False)
    for ax, panel in zip(axes[0], panels):
        key = panel.key
        clean = robust["clean"].get(key)
        for family in families:
            ys = []
            for severity in severities:
                values = [r.get(key) for r in table if r["family"] == family
                          and r["severity"] == severity and r.get(key) is not None]
                ys.append(float(np.mean(values)) if values else np.nan)
            xs = [0] + list(severities)
            ax.plot(xs, [clean if clean is not None else np.nan] + ys, marker="o", label=family)
        ax.set_xlabel("severity (0 = clean)")
        ax.set_ylabel(panel.title)
        ax.set_xticks([0] + list(severities))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
