"""Shared fixtures: an isolated results store per test, the real registry of installed plugins."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data" / "totalseg_example"

HAS_JITTOR = importlib.util.find_spec("jittor") is not None
needs_jittor = pytest.mark.skipif(
    not HAS_JITTOR, reason="jittor is not installed in this environment (it pins numpy 1.26): "
                           "these run in the jittor environment, see .ci/jittor.sh")


def jittor_module():
    """Jittor imported as the backend imports it (CPU only, oneDNN laid out first)."""
    from jmedbench_jittor.runtime import import_jittor
    return import_jittor()


@pytest.fixture(autouse=True)
def isolated_store(tmp_path, monkeypatch):
    """No test writes to the user's store."""
    path = tmp_path / "results.sqlite"
    monkeypatch.setenv("JMEDBENCH_STORE", str(path))
    return path


@pytest.fixture(autouse=True, scope="session")
def isolated_cache(tmp_path_factory):
    """Rendered datasets are cached in this session's own folder, never the user's (the CLI
    subprocesses inherit it)."""
    path = tmp_path_factory.mktemp("jmedbench-cache")
    previous = os.environ.get("JMEDBENCH_CACHE")
    os.environ["JMEDBENCH_CACHE"] = str(path)
    yield path
    if previous is None:
        os.environ.pop("JMEDBENCH_CACHE", None)
    else:
        os.environ["JMEDBENCH_CACHE"] = previous


@pytest.fixture
def one_torch_thread():
    """One intra-op thread while a model test runs (conformance checks compare outputs across
    batch sizes; one thread keeps the reduction order fixed and the cores free)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def registry():
    from jmedbench.registry import get_registry
    return get_registry()


def run_cli(*args: str, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the installed command as a user would, in a subprocess."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "jmedbench", *args], capture_output=True,
                          text=True, env=full_env, timeout=timeout)


def run_cli_in_process(*args: str) -> subprocess.CompletedProcess:
    """``jmedbench.cli.main(args)`` called in this process, stdout and stderr captured, the exit
    status as a subprocess would give it (argparse's exits included). For tests of what a command
    refuses or lists: as a subprocess each would spend most of its time starting (a ``jmedbench``
    start imports torch and scipy, 5-7 s on 2 vCPUs). An exception that escapes ``main`` fails
    the test where a subprocess would have printed a traceback. Tests of the installed command
    itself, of kills and of anything that trains use ``run_cli``."""
    from jmedbench.cli import main

    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            returncode = main(list(args))
        except SystemExit as exc:
            returncode = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return subprocess.CompletedProcess(["jmedbench", *args], returncode, stdout.getvalue(),
                                       stderr.getvalue())


def fresh_interpreter_output(code: str) -> str:
    """stdout of ``code`` run by a fresh interpreter (nothing this test process imported is
    loaded there); a non-zero exit fails the test with its stderr."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture
def cli_in_process():
    return run_cli_in_process


# -- bench: a matrix whose entries train in seconds ------------------------------------------
TINY_BENCH = "[train]\nsteps = 3\n[data]\nimage_size = 32\n[data.phantom]\ntrain_subjects = 2\n" \
             "test_subjects = 1\nshift_subjects = 1\nval_subjects = 1\nslices_per_subject = 2\n"


@pytest.fixture
def tiny_config(tmp_path):
    """A config file for bench: 3 steps on a 2-subject phantom at 32 px."""
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_BENCH)
    return str(path)


def bench_args(store, config, *extra):
    """``jmedbench bench`` of the unet on the quick profile with ``config``, as a command."""
    return [sys.executable, "-m", "jmedbench", "bench", "--models", "unet", "--profile", "quick",
            "--config", config, "--store", str(store), "--json", *extra]
