"""A benchmark matrix: models x strategies x datasets x seeds, each entry one ``jmedbench run``
in its own process (a crash, even a segfault, is recorded for that entry and the rest go on).

Any number of workers (``run_matrix`` processes, on one machine or many, given the same matrix
and store) share the matrix through claims in the store (``jmedbench.claims``): each claims one
entry at a time, runs it under a lease it renews, and the run completes the claim when it
stores its results. Every entry has a ``matrix_key`` (its names, seed, profile, backend and a
hash of the config file); a completed or failed entry is not run again (``retry_failed`` for
the latter), one held under a live lease is left to its worker (a worker with nothing left to
claim waits for those, so that it takes over any whose worker dies), and one whose worker is
gone (``kill -9``, a lost node: its lease expires; at once for a process of this host) runs
again. Child processes die with their worker (PR_SET_PDEATHSIG on Linux), so ``kill -9`` of a
worker leaves incomplete rows, never orphans.
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

from sqlalchemy.exc import SQLAlchemyError

from jmedbench.claims import DEFAULT_LEASE, Claim, Claims
from jmedbench.engine.build import strategy_parts
from jmedbench.errors import UnknownNameError, UserError
from jmedbench.registry import Registry, suggest
from jmedbench.store import ARTIFACTS_ENV, CLAIM_ENV, Store, mask_url


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
    # `run` options for where and how every entry trains (--device cuda --precision bf16 ...);
    # part of the key when given, so a matrix in bf16 is not resumed from one in fp32
    execution: tuple[str, ...] = ()
    save_weights: bool = True  # every run keeps its trained model (not part of the key)
    # what the request matched but the matrix leaves out, and why (shown before it runs)
    notes: list[str] = field(default_factory=list)

    def key(self, entry: Entry) -> str:
        parts = [entry.model, entry.strategy, entry.dataset, str(entry.seed), self.profile,
                 self.backend, self.robustness or "-", self.config_hash]
        return "|".join(parts + ([" ".join(self.execution)] if self.execution else []))


@dataclass
class Outcome:
    entry: Entry
    status: str  # completed | failed | lost (claim taken over; its outcome is the other's)
    run_id: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    resumed: bool = False  # found in the store: run before, or by another worker


def _split(values: str | list[str]) -> list[str]:
    items = values.split(",") if isinstance(values, str) else values
    return [v.strip() for v in items if v.strip()]


def _select_models(registry: Registry, models: str, backend: str) -> tuple[list[str], list[str]]:
    """The names ``--models`` selects (names and wildcards, minus ``!`` exclusions, in order)
    and every problem with it."""
    problems: list[str] = []
    names: list[str] = []
    patterns = _split(models)
    exclusions = [p[1:].strip() for p in patterns if p.startswith("!")]
    for pattern in (p for p in patterns if not p.startswith("!")):
        if any(ch in pattern for ch in "*?["):
            hits = [n for n in registry.names("models", pattern)
                    if backend in registry.backends(n)]
            if not hits:
                problems.append(f"model pattern '{pattern}' matches no model")
            names += hits
        else:
            try:
                registry.model(pattern, backend)
                names.append(pattern)
            except UserError as exc:
                problems.append(str(exc))
    if exclusions and not names and not problems:
        problems.append(f"--models '{models}': only exclusions ('!...'); name what to run first, "
                        f"e.g. '*,!smp-*'")
    for pattern in exclusions:
        if not pattern:
            problems.append(f"--models '{models}': '!' must be followed by a name or wildcard")
            continue
        dropped = set(registry.names("models", pattern))
        # a wildcard is a filter (it may match nothing installed); a name must exist, so that
        # a typo is never silently kept
        if not dropped and not any(ch in pattern for ch in "*?["):
            hint = suggest(pattern, registry.names("models"))
            problems.append(f"--models: excluded model '{pattern}' is not registered"
                            + (f" (did you mean {' or '.join(hint)}?)" if hint else ""))
        names = [n for n in names if n not in dropped]
    if not problems and not names:
        problems.append(f"--models '{models}': the exclusions leave no model")
    return names, problems


def _too_small(registry: Registry, models: str, names: list[str], backend: str, profile: str,
               config_file: str | None) -> tuple[list[str], dict[str, str]]:
    """Models that cannot take the profile's slice size: a name asked for exactly is a problem
    (refused before anything runs); one a wildcard matched is skipped with a note that says so,
    as ``profile`` does. Returns (problems, {skipped name: note})."""
    from jmedbench.config import build_config
    size = build_config(profile, config_file).data.image_size
    exact = {p.strip() for p in _split(models) if not any(ch in p for ch in "*?[!")}
    problems: list[str] = []
    skipped: dict[str, str] = {}
    for name in dict.fromkeys(names):
        spec = registry.model(name, backend)
        problem = spec.side_problem(size)
        if problem is None:
            continue
        why = (f"model '{name}' cannot take the profile's {size} px slices (it takes "
               f"{spec.sizes_text()})")
        if name in exact:
            problems.append(f"{why}: leave it out, or set [data] image_size = "
                            f"{spec.fitting_side(size)} in --config")
        else:
            skipped[name] = f"skipped {why}"
    return problems, skipped


def expand_matrix(registry: Registry, models: str, strategies: str, datasets: str,
                  seeds: str, profile: str, backend: str = "torch",
                  config_file: str | None = None, robustness: str | None = None,
                  execution: tuple[str, ...] = ()) -> Matrix:
    """All entries, with every unknown name in the request reported at once, before any run."""
    model_names, problems = _select_models(registry, models, backend)
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
    notes: list[str] = []
    if not problems:
        too_small, skipped = _too_small(registry, models, model_names, backend, profile,
                                        config_file)
        problems += too_small
        notes = list(skipped.values())
        model_names = [n for n in model_names if n not in skipped]
        if not model_names and not problems:
            problems.append(f"--models '{models}': no matched model takes the profile's slice "
                            f"size ({'; '.join(notes)})")
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
    return Matrix(entries, profile, backend, config_file, robustness, config_hash,
                  tuple(execution), notes=notes)


def _die_with_parent() -> None:  # runs in the child before exec
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def entry_command(matrix: Matrix, entry: Entry) -> list[str]:
    """The run of one entry; its store comes in $JMEDBENCH_STORE (a URL's password is not for
    the command lines ``ps`` shows)."""
    cmd = [sys.executable, "-m", "jmedbench", "run", "--model", entry.model, "--strategy",
           entry.strategy, "--dataset", entry.dataset, "--seed", str(entry.seed), "--profile",
           matrix.profile, "--backend", matrix.backend, "--json",
           "--matrix-key", matrix.key(entry)]
    if matrix.config_file:
        cmd += ["--config", matrix.config_file]
    if matrix.robustness:
        cmd += ["--robustness", matrix.robustness]
    return cmd + list(matrix.execution) + ([] if matrix.save_weights else ["--no-save-weights"])


def register_matrix(matrix: Matrix, claims: Claims) -> list[str]:
    keys = [matrix.key(e) for e in matrix.entries]
    claims.register([(matrix.key(e), e.label()) for e in matrix.entries])
    return keys


def run_matrix(matrix: Matrix, store: Store, workers: int = 1, retry_failed: bool = False,
               on_event: Callable[[str, Entry, Outcome | None], None] | None = None, *,
               lease: float = DEFAULT_LEASE) -> list[Outcome]:
    """Work on the matrix with up to ``workers`` run processes until every entry is completed
    or failed (by this worker or another); return every entry's outcome, in matrix order."""
    claims = Claims(store, lease=lease)
    keys = register_matrix(matrix, claims)
    if retry_failed:
        claims.retry_failed(keys)
    entries = dict(zip(keys, matrix.entries))
    notify = on_event or (lambda *a: None)
    outcomes: dict[str, Outcome] = {}

    def collect_settled() -> None:  # entries settled before, or by other workers
        for row in claims.board(keys):
            key = row["matrix_key"]
            if row["state"] in ("completed", "failed") and key not in outcomes:
                outcomes[key] = stored_outcome(store, entries[key], row)
                notify("resumed", entries[key], outcomes[key])

    collect_settled()
    threads = max(1, (os.cpu_count() or 1) // max(1, workers))
    env = {**os.environ, "JMEDBENCH_THREADS": str(threads), "JMEDBENCH_STORE": store.url}
    if store.artifacts_root is not None:
        env[ARTIFACTS_ENV] = str(store.artifacts_root)
    running: dict[subprocess.Popen, tuple[Entry, Claim, Any]] = {}
    beat_every, last_beat = lease / 3, time.monotonic()
    idle_poll = min(2.0, lease / 4)
    next_claim = 0.0  # after finding nothing to claim, look again only after idle_poll
    try:
        while True:
            while len(running) < workers and time.monotonic() >= next_claim:
                claim = claims.claim(keys)
                if claim is None:
                    next_claim = time.monotonic() + idle_poll
                    break
                entry = entries[claim.key]
                # stderr (progress, warnings) to a file: a full pipe would block the child
                log = tempfile.TemporaryFile("w+")
                proc = subprocess.Popen(entry_command(matrix, entry),
                                        env={**env, CLAIM_ENV: claim.token},
                                        stdout=subprocess.PIPE, stderr=log, text=True,
                                        preexec_fn=_die_with_parent)
                running[proc] = (entry, claim, log)
                notify("started", entry, None)
            if running and time.monotonic() - last_beat >= beat_every:
                try:
                    lost = claims.heartbeat([claim.token for _, claim, _ in running.values()])
                except SQLAlchemyError as exc:  # the store out of reach for a moment: retry
                    print(f"bench: cannot renew leases ({mask_url(str(exc).splitlines()[0])}); "
                          "retrying", file=sys.stderr)
                    lost = set()
                last_beat = time.monotonic()
                for proc, (entry, claim, _) in running.items():
                    if claim.token in lost:  # another worker runs it now: stop this copy
                        proc.kill()
            finished = [p for p in running if p.poll() is not None]
            if finished:
                next_claim = 0.0
            for proc in finished:
                entry, claim, log = running.pop(proc)
                stdout, _ = proc.communicate()
                log.seek(0)
                stderr = log.read()
                log.close()
                outcome = _outcome(matrix, entry, store, claims, claim, proc.returncode,
                                   stdout, stderr)
                if outcome.status != "lost":
                    outcomes[claim.key] = outcome
                notify(outcome.status, entry, outcome)
            if not running:
                collect_settled()
                if len(outcomes) == len(keys):
                    break
                # entries held by other workers: wait, take over any whose lease runs out
                time.sleep(max(0.0, next_claim - time.monotonic()))
            elif not finished:
                time.sleep(0.2)
    finally:
        for proc in running:  # interrupted: the runs die with us, their claims expire
            proc.kill()
    return [outcomes[key] for key in keys]


def stored_outcome(store: Store, entry: Entry, claim: dict[str, Any]) -> Outcome:
    record = None
    if claim.get("run_id"):
        try:
            record = store.get_run(claim["run_id"])
        except UserError:  # deleted since
            record = None
    metrics = (record or {}).get("metrics") or {}
    error = (record or {}).get("error") or claim.get("error")
    return Outcome(entry, claim["state"], claim.get("run_id"), metrics,
                   error=error if claim["state"] == "failed" else None, resumed=True)


def _outcome(matrix: Matrix, entry: Entry, store: Store, claims: Claims, claim: Claim,
             code: int, stdout: str, stderr: str) -> Outcome:
    held = claims.held(claim.token)
    if held is None:
        return Outcome(entry, "lost", error="its claim was taken over by another worker "
                                            "(the lease expired)")
    if held["state"] == "completed":
        try:
            data = json.loads(stdout)
        except json.JSONDecodeError:
            data = store.get_run(held["run_id"])["metrics"] or {}
        return Outcome(entry, "completed", held["run_id"], data)
    if held["state"] == "failed":
        run = store.get_run(held["run_id"]) if held["run_id"] else {}
        return Outcome(entry, "failed", held["run_id"], error=run.get("error") or held["error"])
    # Died before or without storing its outcome (segfault, killed, bad input): record it.
    last_line = next((l for l in reversed(stderr.strip().splitlines()) if l.strip()),
                     f"exit status {code}")
    run_id = store.begin_run({"model": entry.model, "strategy": entry.strategy,
                              "dataset": entry.dataset, "profile": matrix.profile,
                              "seed": entry.seed, "backend": matrix.backend},
                             {"note": "recorded by bench: the run process died"},
                             matrix_key=matrix.key(entry))
    message = f"process exited with status {code}: {last_line}"
    if held["run_id"]:
        message += f" (its run {held['run_id']} is incomplete)"
    store.fail_run(run_id, message)
    if claims.finish(claim.token, "failed", run_id, message) == "lost":
        return Outcome(entry, "lost", run_id, error=message)
    return Outcome(entry, "failed", run_id, error=message)


@dataclass(frozen=True)
class WorkerSpec:
    """What one worker on another machine needs (pickled into a Slurm job by submitit)."""
    matrix: Matrix
    store_url: str
    artifacts: str | None
    workers: int
    lease: float
    retry_failed: bool


def bench_worker(spec: WorkerSpec) -> dict[str, int]:
    """One worker of a launched matrix: work until every entry is settled; counts by status."""
    store = Store(spec.store_url, artifacts=spec.artifacts)
    outcomes = run_matrix(spec.matrix, store, spec.workers, spec.retry_failed,
                          lease=spec.lease)
    counts: dict[str, int] = {}
    for o in outcomes:
        if not o.resumed:
            counts[o.status] = counts.get(o.status, 0) + 1
    return counts
