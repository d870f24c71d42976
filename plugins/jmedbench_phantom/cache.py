"""Rendered phantom subjects cached on disk, so that a matrix of runs renders each subject once.

A subject depends only on (seed, site, index within its site) and the rendering options
(image size, slices per subject, BMD scatter, erosion), and on the renderer's code: the key
is a hash of all of these plus the source of every module of this package, so changing the
renderer invalidates the cache by itself. One ``.npz`` file per subject (images as int16 HU,
labels uint8, the rest as JSON) under ``$JMEDBENCH_CACHE/phantom`` or
``~/.cache/jmedbench/phantom``; ``JMEDBENCH_CACHE=off`` turns caching off. A file that cannot
be read is rendered again (and rewritten); writes go through a temporary file and a rename,
so parallel workers never read half a file.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from jmedbench.data import Subject

CACHE_ENV = "JMEDBENCH_CACHE"
FORMAT = 2  # bumped with each change of what a rendered subject holds or how it is drawn


def cache_root() -> Path | None:
    """The phantom's cache folder, or None when caching is off."""
    value = os.environ.get(CACHE_ENV, "")
    if value.lower() in ("off", "0", "no", "false"):
        return None
    base = Path(value).expanduser() if value else Path.home() / ".cache" / "jmedbench"
    return base / "phantom"


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """Hash of this package's source: a new renderer never reads an old renderer's subjects."""
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def subject_key(**options) -> str:
    text = json.dumps({"format": FORMAT, "code": code_version(), **options}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def load(root: Path, key: str) -> Subject | None:
    path = root / f"{key}.npz"
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            info = json.loads(str(data["info"]))
            return Subject(info["subject_id"], data["image"].astype(np.float32),
                           data["label"].astype(np.uint8), tuple(info["spacing"]),
                           site=info["site"], sex=info["sex"], age=info["age"],
                           true_bmd=info["true_bmd"], meta=info["meta"])
    except (OSError, ValueError, KeyError):  # damaged or foreign: render again
        return None


def save(root: Path, key: str, subject: Subject) -> None:
    try:
        root.mkdir(parents=True, exist_ok=True)
        info = {"subject_id": subject.subject_id, "spacing": list(subject.spacing),
                "site": subject.site, "sex": subject.sex, "age": subject.age,
                "true_bmd": subject.true_bmd, "meta": subject.meta}
        fd, tmp = tempfile.mkstemp(dir=root, suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, image=subject.image.astype(np.int16), label=subject.label,
                     info=np.array(json.dumps(info)))
        os.replace(tmp, root / f"{key}.npz")
    except OSError:  # a read-only or full disk: the cache is an optimisation, not a need
        return
