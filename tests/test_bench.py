"""bench: failures isolated and recorded, all unknown names rejected up front, and resume after
kill -9 finishes the missing entries without duplicating or losing any."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
from conftest import SHARED_DATA, bench_args

from jmedbench.store import Store


def test_unknown_names_are_all_rejected_before_anything_runs(cli_in_process, tmp_path):
    store = tmp_path / "s.sqlite"
    out = cli_in_process("bench", "--models", "unte,zzz*", "--strategies", "baseline,bogus",
                         "--datasets", "phantm", "--store", str(store))
    assert out.returncode == 2
    for fragment in ("unknown model 'unte'", "'zzz*' matches no model",
                     "unknown strategy 'bogus'", "unknown dataset 'phantm'"):
        assert fragment in out.stderr
    assert not store.exists() or Store(store).runs() == []


def test_exclusions_drop_models_and_a_mistyped_exclusion_is_refused():
    from jmedbench.engine.bench import expand_matrix
    from jmedbench.errors import UserError
    from jmedbench.registry import get_registry

    registry = get_registry()
    every = expand_matrix(registry, "*", "baseline", "phantom", "0", "quick").entries
    kept = expand_matrix(registry, "*,!unet*,!segnet", "baseline", "phantom", "0",
                         "quick").entries
    dropped = {e.model for e in every} - {e.model for e in kept}
    assert "unet" in dropped and "unet-plusplus" in dropped and "segnet" in dropped
    assert all(not (e.model.startswith("unet") or e.model == "segnet") for e in kept)
    assert len(kept) == len(every) - len(dropped)
    # a wildcard exclusion is a filter (it may match nothing installed); a name must exist
    assert len(expand_matrix(registry, "*,!nosuchlib-*", "baseline", "phantom", "0",
                             "quick").entries) == len(every)
    for models, fragment in (("*,!segnte", "excluded model 'segnte' is not registered "
                                           "(did you mean segnet"),
                             ("!unet*", "only exclusions"), ("unet,!", "'!' must be followed"),
                             ("unet,!unet", "leave no model")):
        with pytest.raises(UserError) as info:
            expand_matrix(registry, models, "baseline", "phantom", "0", "quick")
        assert fragment in str(info.value), (models, str(info.value))


def test_a_model_that_cannot_take_the_profiles_slices_is_refused_or_skipped_aloud():
    """Named exactly, such a model is refused before anything runs; matched by a wildcard it is
    left out with a note (shown before the bench starts), never dropped silently and never
    left to fail after the others have trained."""
    pytest.importorskip("segmentation_models_pytorch")
    from jmedbench.engine.bench import expand_matrix
    from jmedbench.errors import UserError
    from jmedbench.registry import get_registry

    registry = get_registry()
    with pytest.raises(UserError) as info:
        expand_matrix(registry, "unet,smp-pan-mobilenet_v2", "baseline", "phantom", "0",
                      "quick")
    assert str(info.value) == ("model 'smp-pan-mobilenet_v2' cannot take the profile's 64 px "
                               "slices (it takes multiples of 32 and at least 128): leave it "
                               "out, or set [data] image_size = 128 in --config")
    matrix = expand_matrix(registry, "smp-p*", "baseline", "phantom", "0", "quick")
    assert [e.model for e in matrix.entries] == ["smp-pspnet-resnet34"]
    assert matrix.notes == ["skipped model 'smp-pan-mobilenet_v2' cannot take the profile's "
                            "64 px slices (it takes multiples of 32 and at least 128)"]
    # at the default profile's 128 px it runs
    assert [e.model for e in expand_matrix(registry, "smp-pan*", "baseline", "phantom", "0",
                                           "default").entries] == ["smp-pan-mobilenet_v2"]
    with pytest.raises(UserError, match="no matched model takes the profile's slice size"):
        expand_matrix(registry, "smp-pan*", "baseline", "phantom", "0", "quick")


def test_failure_is_recorded_and_the_rest_go_on(tmp_path, tiny_config):
    store = tmp_path / "s.sqlite"
    # 'example' has no train split (or, in a checkout without ../shared beside it, no data):
    # that entry fails, the phantom entry completes.
    out = subprocess.run(bench_args(store, tiny_config, "--datasets", "phantom,example"),
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 1
    entries = {e["dataset"]: e for e in json.loads(out.stdout)["entries"]}
    assert entries["phantom"]["status"] == "completed"
    assert entries["example"]["status"] == "failed"
    reason = "no split 'train'" if SHARED_DATA.exists() else "example data not found"
    assert reason in entries["example"]["error"]
    statuses = sorted(r["status"] for r in Store(store).runs())
    assert statuses == ["completed", "failed"]


def test_resume_after_kill_finishes_missing_entries_without_duplicates(tmp_path, tiny_config):
    store = tmp_path / "s.sqlite"
    args = bench_args(store, tiny_config, "--seeds", "0,1,2")
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 600
        while time.time() < deadline:  # kill once one entry is done and the next has begun
            runs = Store(store).runs() if store.exists() else []
            if any(r["status"] == "completed" for r in runs) and len(runs) >= 2:
                break
            time.sleep(0.3)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    time.sleep(1.0)  # the child dies with its parent (PR_SET_PDEATHSIG)
    before = Store(store).runs()
    completed_before = {r["run_id"] for r in before if r["status"] == "completed"}
    assert completed_before and len(completed_before) < 3
    assert any(r["status"] == "incomplete" for r in before), [(r["status"], r["pid"]) for r in before]

    out = subprocess.run(args, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr
    entries = json.loads(out.stdout)["entries"]
    assert [e["seed"] for e in entries] == [0, 1, 2]
    assert all(e["status"] == "completed" for e in entries)
    after = Store(store).runs(status="completed")
    assert len(after) == 3                                  # none duplicated
    assert completed_before <= {r["run_id"] for r in after}  # none lost
    assert sum(e["resumed"] for e in entries) == len(completed_before)
