"""A benchmark matrix: models x strategies x datasets x seeds, each entry one ``jmedbench run``
in its own process (a crash, even a segfault, is recorded for that entry and the rest go on).

Resuming is by the store: every entry has a ``matrix_key`` (its names, seed, profile, backend
and a hash of the config file); an entry with a completed or failed run is not run again (use
``retry_failed`` for the latter), one whose process is still alive is left to it, and one whose
run is missing or incomplete (killed) runs now. Child processes die with the bench process
(PR_SET_PDEATHSIG on Linux), so ``kill -9`` of the bench leaves incomplete rows, never orphans.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from jmedbench.engine.build import strategy_parts
from jmedbench.errors import UnknownNameError, UserError
from jmedbench.registry import Registry, suggest
from jmedbench.store import Store


@dataclass(frozen=True)
class Entry:
    model: str
    strategy: str
    dataset: str
    seed: int

    def label(self) -> str:
        return f"{self.model}/{self.strategy}/{self.dataset}/seed{self.seed}"


@dataclass
class Matrix:
    entries: list[Entry]
    profile: str
    backend: str = "torch"
    config_file: str | None = None
    robustness: str | None = None
    config_hash: str = ""

    def key(self, entry: Entry) -> str:
        return "|".join([entry.model, entry.strategy, entry.dataset, str(entry.seed),
                         self.profile, self.backend, self.robustness or "-", self.config_hash])


@dataclass
class Outcome:
    entry: Entry
    status: str  # completed | failed | skipped-running
    run_id: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    resumed: bool = False  # found in the store, not run now


def _split(values: str | list[str]) -> list[str]:
    items = values.split(",") if isinstance(values, str) else values
    return [v.strip() for v in items if v.strip()]


def expand_matrix(registry: Registry, models: str, strategies: str, datasets: str,
                  seeds: str, profile: str, backend: str = "torch",
                  config_file: str | None = None, robustness: str | None = None) -> Matrix:
    """All entries, with every unknown name in the request reported at once, before any run."""
    problems: list[str] = []
    model_names: list[str] = []
    for pattern in _split(models):
        if any(ch in pattern for ch in "*?["):
            hits = [n for n in registry.names("models", pattern)
                    if backend in registry.backends(n)]
            if not hits:
                problems.append(f"model pattern '{pattern}' matches no model")
            model_names += hits
        else:
            try:
                registry.model(pattern, backend)
                model_names.append(pattern)
            except UserError as exc:
                problems.append(str(exc))
    strategy_names = _split(strategies)
    for name in strategy_names:
        try:
            strategy_parts(registry, name)
        except UserError as exc:
            problems.append(str(exc))
    dataset_names = _split(datasets)
    for name in dataset_names:
        try:
            registry.dataset(name.partition(":")[0])
        except UnknownNameError as exc:
            problems.append(str(exc))
    try:
        seed_values = [int(s) for s in _split(seeds)]
    except ValueError:
        problems.append(f"--seeds '{seeds}': expected integers separated by commas")
        seed_values = []
    from jmedbench.config import available_profiles
    if profile not in available_profiles():
        hint = suggest(profile, available_profiles())
        problems.append(f"unknown profile '{profile}'" + (f": did you mean {hint[0]}?" if hint else ""))
    if problems:
        raise UserError("; ".join(problems))
    config_hash = ""
    if config_file:
        try:
            config_hash = hashlib.sha256(Path(config_file).read_bytes()).hexdigest()[:12]
        except OSError as exc:
            raise UserError(f"config file {config_file}: {exc.strerror}") from None
    seen: set[str] = set()
    unique_models = [m for m in model_names if not (m in seen or seen.add(m))]
    entries = [Entry(m, s, d, seed) for m in unique_models for s in strategy_names
               for d in dataset_names for seed in seed_values]
    return Matrix(entries, profile, backend, config_file, robustness, config_hash)


def _die_with_parent() -> None:  # runs in the child before exec
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def entry_command(matrix: Matrix, entry: Entry, store_path: Path) -> list[str]:
    cmd = [sys.executable, "-m", "jmedbench", "run", "--model", entry.model, "--strategy",
           entry.strategy, "--dataset", entry.dataset, "--seed", str(entry.seed), "--profile",
           matrix.profile, "--backend", matrix.backend, "--store", str(store_path), "--json",
           "--matrix-key", matrix.key(entry)]
    if matrix.config_file:
        cmd += ["--config", matrix.config_file]
    if matrix.robustness:
        cmd += ["--robustness", matrix.robustness]
    return cmd


def plan(matrix: Matrix, store: Store, retry_failed: bool = False
         ) -> tuple[list[Entry], list[Outcome]]:
    """Entries still to run, and outcomes already in the store."""
    todo, done = [], []
    for entry in matrix.entries:
        runs = store.runs(matrix_key=matrix.key(entry))
        completed = [r for r in runs if r["status"] == "completed"]
        failed = [r for r in runs if r["status"] == "failed"]
        running = [r for r in runs if r["status"] == "running"]
        if completed:
            r = completed[-1]
            done.append(Outcome(entry, "completed", r["run_id"], r["metrics"] or {}, resumed=True))
        elif failed and not retry_failed:
            r = failed[-1]
            done.append(Outcome(entry, "failed", r["run_id"], error=r["error"], resumed=True))
        elif running:
            done.append(Outcome(entry, "skipped-running", running[-1]["run_id"], resumed=True))
        else:
            todo.append(entry)
    return todo, done


def run_matrix(matrix: Matrix, store: Store, workers: int = 1, retry_failed: bool = False,
               on_event: Callable[[str, Entry, Outcome | None], None] | None = None
               ) -> list[Outcome]:
    """Run what is missing with up to ``workers`` processes; return every entry's outcome."""
    todo, outcomes = plan(matrix, store, retry_failed)
    notify = on_event or (lambda *a: None)
    for outcome in outcomes:
        notify("resumed", outcome.entry, outcome)
    threads = max(1, (os.cpu_count() or 1) // max(1, workers))
    env = {**os.environ, "JMEDBENCH_THREADS": str(threads)}
    pending = list(todo)
    running: dict[subprocess.Popen, tuple[Entry, Any]] = {}
    while pending or running:
        while pending and len(running) < workers:
            entry = pending.pop(0)
            # stderr (progress, warnings) to a file: a full pipe would block the child
            log = tempfile.TemporaryFile("w+")
            proc = subprocess.Popen(entry_command(matrix, entry, store.path), env=env,
                                    stdout=subprocess.PIPE, stderr=log, text=True,
                                    preexec_fn=_die_with_parent)
            running[proc] = (entry, log)
            notify("started", entry, None)
        finished = [p for p in running if p.poll() is not None]
        if not finished:
            time.sleep(0.2)
            continue
        for proc in finished:
            entry, log = running.pop(proc)
            stdout, _ = proc.communicate()
            log.seek(0)
            stderr = log.read()
            log.close()
            outcome = _outcome(matrix, entry, store, proc.returncode, stdout, stderr)
            outcomes.append(outcome)
            notify(outcome.status, entry, outcome)
    order = {e: i for i, e in enumerate(matrix.entries)}
    return sorted(outcomes, key=lambda o: order[o.entry])


def _outcome(matrix: Matrix, entry: Entry, store: Store, code: int, stdout: str,
             stderr: str) -> Outcome:
    if code == 0:
        try:
            data = json.loads(stdout)
            return Outcome(entry, "completed", data.get("run_id"), data)
        except json.JSONDecodeError:
            pass
    runs = store.runs(matrix_key=matrix.key(entry))
    last_line = next((l for l in reversed(stderr.strip().splitlines()) if l.strip()),
                     f"exit status {code}")
    if runs and runs[-1]["status"] == "failed":
        return Outcome(entry, "failed", runs[-1]["run_id"], error=runs[-1]["error"])
    # Died before or without storing a failure (segfault, killed, bad input): record it.
    run_id = store.begin_run({"model": entry.model, "strategy": entry.strategy,
                              "dataset": entry.dataset, "profile": matrix.profile,
                              "seed": entry.seed, "backend": matrix.backend},
                             {"note": "recorded by bench: the run process died"},
                             matrix_key=matrix.key(entry))
    message = f"process exited with status {code}: {last_line}"
    if runs and runs[-1]["status"] in ("incomplete", "running"):
        message += f" (its run {runs[-1]['run_id']} is incomplete)"
    store.fail_run(run_id, message)
    return Outcome(entry, "failed", run_id, error=message)
