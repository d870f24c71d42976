"""Launchers for ``jmedbench bench`` workers: ``local`` (this process is the worker, with its
pool of run processes) and ``submitit`` (a Slurm job array of workers, each the same
``bench_worker`` on the same matrix and store; submitit's local executor runs the same array
as processes of this machine, for tests).

The submitit options come from a TOML table, ``[submitit]`` in ``--executor-config FILE``:
``jobs`` (how many workers, the array size), ``workers`` (run processes per worker), ``folder``
(submitit's logs and pickles, on a shared path), ``cluster`` (``slurm``, ``local`` or
``debug``; default: Slurm where ``sbatch`` is found, else local), and every other key is given
to ``AutoExecutor.update_parameters`` as it is (``timeout_min``, ``gpus_per_node``,
``cpus_per_task``, ``mem_gb``, ``slurm_partition``, ``slurm_array_parallelism``,
``slurm_additional_parameters``, ...).
"""

from __future__ import annotations

import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from jmedbench.claims import Claims
from jmedbench.engine.bench import (Entry, Matrix, Outcome, WorkerSpec, bench_worker, register_matrix,
                                    stored_outcome)
from jmedbench.errors import UserError
from jmedbench.store import Store

EXECUTORS = ("local", "submitit")
_OWN_KEYS = {"jobs": int, "workers": int, "folder": str, "cluster": str}


@dataclass
class SubmititOptions:
    jobs: int = 1
    workers: int = 1
    folder: str = "jmedbench-submitit"
    cluster: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)


def read_executor_config(path: str | None) -> SubmititOptions:
    """The ``[submitit]`` table of ``path`` (no file: one local-or-Slurm job, one worker)."""
    options = SubmititOptions()
    if path is None:
        return options
    try:
        data = tomllib.loads(Path(path).read_text())
    except OSError as exc:
        raise UserError(f"--executor-config {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"--executor-config {path}: not valid TOML ({exc})") from None
    unknown = sorted(set(data) - {"submitit"})
    if unknown:
        raise UserError(f"--executor-config {path}: unknown table '{unknown[0]}' (expected "
                        "[submitit])")
    for key, value in data.get("submitit", {}).items():
        if key in _OWN_KEYS:
            if not isinstance(value, _OWN_KEYS[key]) or isinstance(value, bool):
                raise UserError(f"--executor-config {path} [submitit] {key}: expected "
                                f"{_OWN_KEYS[key].__name__}, got {value!r}")
            setattr(options, key, value)
        else:
            options.parameters[key] = value
    if options.jobs < 1 or options.workers < 1:
        raise UserError(f"--executor-config {path} [submitit]: jobs and workers must be at "
                        "least 1")
    return options


def submit(spec: WorkerSpec, options: SubmititOptions, config_name: str = "[submitit]"):
    """Submit ``options.jobs`` workers as one job array; the submitit jobs."""
    try:
        import submitit
    except ImportError:
        raise UserError("--executor submitit: submitit is not installed: "
                        "pip install 'jmedbench[cluster]'") from None
    try:
        executor = submitit.AutoExecutor(folder=options.folder, cluster=options.cluster)
    except (ValueError, RuntimeError) as exc:
        raise UserError(f"{config_name} cluster {options.cluster!r}: {exc}") from None
    try:
        executor.update_parameters(name="jmedbench-bench", **options.parameters)
    except (ValueError, TypeError, NameError) as exc:  # submitit: NameError, unknown key
        raise UserError(f"{config_name}: {str(exc).splitlines()[0]}") from None
    return executor.map_array(bench_worker, [spec] * options.jobs)


def settled(matrix: Matrix, store: Store) -> set[str]:
    """The keys of the entries completed or failed already (registering the matrix)."""
    claims = Claims(store)
    keys = register_matrix(matrix, claims)
    return {row["matrix_key"] for row in claims.board(keys)
            if row["state"] in ("completed", "failed")}


def follow(matrix: Matrix, store: Store, jobs: list, before: set[str],
           on_event: Callable[[str, Entry, Outcome | None], None] | None = None,
           poll: float = 2.0) -> tuple[list[Outcome], list[str]]:
    """Watch the store while the jobs work: report entries as they start and settle, until the
    jobs have ended. ``before``: the entries settled before the jobs were submitted. Returns
    every settled entry's outcome and one line per failed job."""
    claims = Claims(store)
    keys = [matrix.key(e) for e in matrix.entries]
    entries = dict(zip(keys, matrix.entries))
    notify = on_event or (lambda *a: None)
    seen: dict[str, str] = {}
    outcomes: dict[str, Outcome] = {}
    while True:
        ended = all(job.done() for job in jobs)
        for row in claims.board(keys):
            key, state = row["matrix_key"], row["state"]
            if state in ("completed", "failed") and key not in outcomes:
                outcome = stored_outcome(store, entries[key], row)
                outcome.resumed = key in before
                outcomes[key] = outcome
                if seen.get(key) == "running":
                    notify(state, entries[key], outcome)
                else:  # settled before, or between two looks: never shown running
                    if not outcome.resumed:
                        notify("started", entries[key], None)
                    notify("resumed" if outcome.resumed else state, entries[key], outcome)
            elif state == "running" and seen.get(key) != "running":
                notify("started", entries[key], None)
            seen[key] = state
        if ended:
            break
        time.sleep(poll)
    problems = []
    for job in jobs:
        error = job.exception()
        if error is not None:
            lines = [l for l in str(error).strip().splitlines() if l.strip()]
            problems.append(f"job {job.job_id}: {lines[-1] if lines else type(error).__name__}"
                            f" (log: {job.paths.stderr})")
    return [outcomes[k] for k in keys if k in outcomes], problems
