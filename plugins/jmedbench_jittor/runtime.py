"""Importing Jittor safely on an offline CPU machine.

Jittor 1.3.11 compiles its core with the system C++ compiler on first import (minutes) and
caches it under ``<JITTOR_HOME>/.cache/jittor`` (``JITTOR_HOME`` defaults to the home
directory). Two things in that first import reach for the network unless told otherwise:

- CUDA: it looks for ``nvcc`` (on PATH, /usr/local/cuda/bin, ...) and, with a CUDA driver but
  no toolkit, downloads its own. This backend is CPU-only, so ``nvcc_path`` is set to the empty
  string, which Jittor's ``compiler.py`` takes as "no CUDA" and checks before anything else.
- oneDNN (``use_mkl=1``, its default): without a copy in
  ``<JITTOR_HOME>/.cache/jittor/mkl/dnnl_lnx_2.2.0_cpu_gomp/`` it downloads one. Its
  ``mkl_include_path``/``mkl_lib_path`` variables would point elsewhere but are broken in
  1.3.11 (``mkl_home`` is then undefined), so :func:`install_system_onednn` lays Debian's
  ``libdnnl-dev`` out in that cache folder instead. Without oneDNN convolutions fall back to
  Jittor's generic kernels, which train a UNet about 40x slower; we then set ``use_mkl=0``
  (no download attempt) and warn.

:func:`import_jittor` does all of this, says on stderr that a first import compiles for
minutes, and returns the module.
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path
from types import ModuleType

from jmedbench.errors import UserError

INSTALL_HINT = "pip install 'jmedbench[jittor]'"
# The folder name Jittor 1.3.11 looks for before it downloads oneDNN (compile_extern.py).
ONEDNN_FOLDER = "dnnl_lnx_2.2.0_cpu_gomp"
SYSTEM_INCLUDE = Path("/usr/include")
SYSTEM_LIB_DIRS = (Path("/usr/lib/x86_64-linux-gnu"), Path("/usr/lib64"), Path("/usr/lib"))

_JITTOR: ModuleType | None = None


def jittor_installed() -> bool:
    """True when the jittor package can be imported (without importing it: that compiles)."""
    return importlib.util.find_spec("jittor") is not None


def require_jittor() -> None:
    if not jittor_installed():
        raise UserError(f"--backend jittor: Jittor is not installed; {INSTALL_HINT} "
                        f"(see docs/jittor.md)")


def jittor_home() -> Path:
    """Jittor's home as ``jittor_utils.home()`` computes it: $JITTOR_HOME, else the one saved in
    ~/.cache/jittor/config.json, else the user's home."""
    if os.environ.get("JITTOR_HOME"):
        return Path(os.environ["JITTOR_HOME"]).absolute()
    config = Path.home() / ".cache" / "jittor" / "config.json"
    try:
        saved = json.loads(config.read_text()).get("JITTOR_HOME")
    except (OSError, ValueError):
        saved = None
    return Path(saved) if saved else Path.home()


def cache_dir() -> Path:
    """Where Jittor keeps its compiled core, kernels and oneDNN."""
    return jittor_home() / ".cache" / "jittor"


def onednn_dir() -> Path:
    return cache_dir() / "mkl" / ONEDNN_FOLDER


def onednn_ready() -> bool:
    """True when Jittor will find oneDNN in its cache (and so will not download it)."""
    root = onednn_dir()
    return (root / "lib" / "libmkldnn.so").exists() and (root / "include" / "dnnl.hpp").exists()


def system_onednn() -> tuple[Path, Path] | None:
    """(include dir, libdnnl.so) of a system oneDNN (Debian: ``apt-get install libdnnl-dev``)."""
    if not (SYSTEM_INCLUDE / "dnnl.hpp").exists():
        return None
    for lib_dir in SYSTEM_LIB_DIRS:
        lib = lib_dir / "libdnnl.so"
        if lib.exists():
            return SYSTEM_INCLUDE, lib
    return None


def install_system_onednn() -> bool:
    """Lay a system oneDNN out where Jittor looks for its own: ``include/`` with links to the
    dnnl headers (and the ``oneapi/`` folder they include), ``lib/libmkldnn.so`` linking to
    ``libdnnl.so``. Returns whether oneDNN is now in place. Idempotent."""
    if onednn_ready():
        return True
    found = system_onednn()
    if found is None or platform.system() != "Linux":
        return False
    include, lib = found
    root = onednn_dir()
    (root / "include").mkdir(parents=True, exist_ok=True)
    (root / "lib").mkdir(parents=True, exist_ok=True)
    names = [p.name for p in include.glob("dnnl*")]
    if (include / "oneapi").is_dir():
        names.append("oneapi")
    for name in names:
        link = root / "include" / name
        if not link.exists():
            link.symlink_to(include / name)
    link = root / "lib" / "libmkldnn.so"
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(lib)
    return onednn_ready()


def configure_environment() -> bool:
    """Set the variables Jittor reads at import; returns whether oneDNN will be used."""
    os.environ.setdefault("nvcc_path", "")  # CPU only: never look for or download CUDA
    os.environ.setdefault("log_silent", "1")  # its info lines would mix into our output
    if os.environ.get("use_mkl") == "0":
        return False
    use_mkl = install_system_onednn()
    if not use_mkl:
        os.environ["use_mkl"] = "0"  # never download oneDNN
        warnings.warn("Jittor runs without oneDNN: convolutions use its generic CPU kernels, "
                      "about 40x slower to train. Install it with `apt-get install "
                      "libdnnl-dev` (or `python -m jmedbench_jittor.setup`).", stacklevel=3)
    else:
        os.environ["use_mkl"] = "1"
    return use_mkl


def _first_import_pending() -> bool:
    """No compiled Jittor core in the cache yet: this import will compile for minutes."""
    return not any(cache_dir().glob("jt*/**/jittor_core*.so"))


def import_jittor(quiet: bool = False) -> ModuleType:
    """Import Jittor for CPU use, setting up oneDNN first; one clear UserError if it is not
    installed. The first import in a fresh cache compiles Jittor (about 3.5 minutes on 2 cores),
    which is said on stderr."""
    global _JITTOR
    if _JITTOR is not None:
        return _JITTOR
    require_jittor()
    configure_environment()
    first = _first_import_pending()
    if first and not quiet:
        print(f"jittor: first import compiles Jittor into {cache_dir()} (about 3-5 minutes on "
              f"2 cores, once per machine)...", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    import jittor

    jittor.flags.use_cuda = 0
    if first and not quiet:
        print(f"jittor: ready after {time.perf_counter() - t0:.0f} s", file=sys.stderr,
              flush=True)
    _JITTOR = jittor
    return jittor


def onednn_in_use() -> bool:
    """Whether the imported Jittor has its oneDNN operators."""
    if _JITTOR is None:
        return False
    from jittor import compile_extern
    return bool(getattr(compile_extern, "mkl_ops", None))
