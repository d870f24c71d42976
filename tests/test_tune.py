"""tune: two worker processes share one Optuna storage (a journal file always; PostgreSQL when
JMEDBENCH_TEST_POSTGRES names a server, as .ci/run starts one), and bad storage URLs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import optuna
import pytest

from jmedbench.engine.tune import open_storage
from jmedbench.errors import UserError

TINY = ("[train]\nsteps = 4\n[data]\nimage_size = 32\n[data.phantom]\ntrain_subjects = 2\n"
        "val_subjects = 1\ntest_subjects = 1\nshift_subjects = 1\nslices_per_subject = 2\n")


def two_workers(storage: str, config: str, study: str, trials: int = 4) -> None:
    cmd = [sys.executable, "-m", "jmedbench", "tune", "--model", "unet", "--profile", "quick",
           "--config", config, "--trials", str(trials), "--storage", storage, "--study", study,
           "--eval-every", "2", "--json"]
    workers = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for _ in range(2)]
    for w in workers:
        out, err = w.communicate(timeout=900)
        assert w.returncode == 0, err[-2000:]
        assert json.loads(out)["study"] == study


def check_shared_study(storage_url: str, study: str, trials: int = 4) -> None:
    loaded = optuna.load_study(study_name=study, storage=open_storage(storage_url))
    finished = [t for t in loaded.trials if t.state in (optuna.trial.TrialState.COMPLETE,
                                                         optuna.trial.TrialState.PRUNED)]
    assert trials <= len(finished) <= trials + 1  # each worker may finish one in flight
    assert len({t.number for t in loaded.trials}) == len(loaded.trials)  # no duplicates
    assert len({t.user_attrs["worker"] for t in finished}) == 2  # both workers contributed


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    return str(path)


def test_two_workers_share_a_journal_storage(tmp_path, tiny):
    url = f"journal:{tmp_path / 'study.log'}"
    two_workers(url, tiny, "journal-study")
    check_shared_study(url, "journal-study")


@pytest.mark.skipif(not os.environ.get("JMEDBENCH_TEST_POSTGRES"),
                    reason="set JMEDBENCH_TEST_POSTGRES to a PostgreSQL URL (.ci/run does)")
def test_two_workers_share_a_postgresql_storage(tiny):
    url = os.environ["JMEDBENCH_TEST_POSTGRES"]
    study = f"ci-{uuid.uuid4().hex[:8]}"
    two_workers(url, tiny, study)
    check_shared_study(url, study)


def test_unreachable_storage_is_one_line(cli_in_process):
    out = cli_in_process("tune", "--model", "unet", "--trials", "1",
                         "--storage", "postgresql://u:p@127.0.0.1:1/db")
    assert out.returncode == 2
    assert "--storage postgresql://u:p@127.0.0.1:1/db: cannot open" in out.stderr
    assert "Traceback" not in out.stderr


def test_bad_storage_url():
    with pytest.raises(UserError, match="cannot open"):
        open_storage("nosuchdb://x")
