"""``jmedbench runs``: listing with filters, compare with a paired test over per-subject scores,
delete with the run's files, export; and the short summary ``jmedbench run`` prints. Runs are
written through the store's API (no training: the browser only reads what a run stored)."""

from __future__ import annotations

import io
import json
import time

import pytest

from jmedbench.cli import main
from jmedbench.cli.summary import metric_group, summary_rows
from jmedbench.runs import compare_runs, filter_runs, paired_tests
from jmedbench.store import Store


def stored_run(store: Store, *, model="unet", strategy="baseline", dataset="phantom",
               profile="quick", metrics=None, subjects=(), weights: bool = False,
               status="completed") -> str:
    config = {"model": model, "strategy": strategy, "dataset": dataset, "profile": profile,
              "seed": 0, "backend": "torch"}
    run_id = store.begin_run(config, {})
    time.sleep(0.01)  # distinct creation times, newest last
    if status == "failed":
        store.fail_run(run_id, "RuntimeError: boom")
        return run_id
    store.finish_run(run_id, metrics=metrics or {"dice": 0.5, "shift_dice": 0.4},
                     timings={}, details={}, image_rows=[("test", "s1", 0, {"dice": [1, .5, .5]})],
                     subject_rows=list(subjects))
    if weights:
        path = store.artifacts_dir(run_id) / "model.safetensors"
        path.write_bytes(b"weights")
        store.set_artifacts(run_id, {"weights": str(path)})
    return run_id


def cli(*args: str) -> int:
    return main(list(args))


def test_filters_and_newest_first(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    a = stored_run(store, model="unet")
    b = stored_run(store, model="unet++", strategy="sas")
    c = stored_run(store, model="segnet", status="failed")
    records = store.runs()
    assert [r["run_id"] for r in filter_runs(records)] == [c, b, a]
    assert [r["run_id"] for r in filter_runs(records, model="unet*")] == [b, a]
    assert [r["run_id"] for r in filter_runs(records, model="unet")] == [a]
    assert [r["run_id"] for r in filter_runs(records, status="failed")] == [c]
    assert [r["run_id"] for r in filter_runs(records, strategy="sas", profile="quick")] == [b]
    today = time.strftime("%Y-%m-%d")
    assert len(filter_runs(records, since=today, until=today)) == 3
    assert filter_runs(records, until="2000-01-01") == []


def test_runs_lists_as_a_table_and_as_json(tmp_path, capsys):
    store = Store(tmp_path / "s.sqlite")
    a = stored_run(store, weights=True)
    b = stored_run(store, model="segnet")
    assert cli("runs", "--store", str(store.path), "--json") == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["run_id"] for r in rows] == [b, a]
    assert rows[1]["artifacts"]["weights"].endswith("model.safetensors")
    assert rows[0]["metrics"]["dice"] == 0.5
    assert cli("runs", "--model", "seg*", "--store", str(store.path)) == 0
    out = capsys.readouterr().out
    assert b in out and a not in out


@pytest.mark.parametrize("args, message", [
    (["--since", "yesterday"], "--since 'yesterday': expected a date YYYY-MM-DD"),
    (["--limit", "0"], "--limit 0: must be at least 1"),
])
def test_bad_filters_are_one_line(tmp_path, capsys, args, message):
    assert cli("runs", *args, "--store", str(tmp_path / "s.sqlite")) == 2
    assert message in capsys.readouterr().err


def test_paired_wilcoxon_over_per_subject_scores():
    """Eight subjects, every one better in B: the exact two-sided p of the signed-rank test is
    2 / 2^8; per-class lists are tested per class, by the aggregate metrics' names."""
    rows_a = [{"split": "test", "subject": f"s{i}", "dice": [0.9, 0.5 + i / 100, 0.6],
               "bmd_error": 1.0 + i} for i in range(8)]
    rows_b = [{"split": "test", "subject": f"s{i}", "dice": [0.9, 0.6 + i / 50, 0.6],
               "bmd_error": 1.0 + i} for i in range(8)]
    tests = {t.metric: t for t in paired_tests(rows_a, rows_b)}
    assert set(tests) == {"dice_cortical", "dice_cancellous", "bmd_error"}
    cortical = tests["dice_cortical"]
    assert cortical.n == 8 and cortical.p_value == pytest.approx(2 / 2 ** 8)
    assert cortical.median_difference > 0
    assert tests["bmd_error"].p_value != tests["bmd_error"].p_value  # all equal: NaN


def test_compare_side_by_side_with_and_without_subject_scores(tmp_path, capsys):
    store = Store(tmp_path / "s.sqlite")
    scores = lambda shift: [("test", f"s{i}", {"dice": [0.9, 0.5 + shift + i / 100, 0.6]})
                            for i in range(6)]
    a = stored_run(store, metrics={"dice": 0.50, "bmd_mae": 4.0}, subjects=scores(0.0))
    b = stored_run(store, metrics={"dice": 0.60, "bmd_mae": 3.0}, subjects=scores(0.1))
    c = stored_run(store, metrics={"dice": 0.55, "bmd_mae": 3.5})
    result = compare_runs(store, a, b)
    assert [(k, round(d, 6)) for k, _, _, d in result.metrics] == [("bmd_mae", -1.0),
                                                                   ("dice", 0.1)]
    tests = {t.metric: t for t in result.tests}
    assert result.subject_scores and tests["dice_cortical"].p_value == pytest.approx(2 / 2 ** 6)
    assert cli("runs", "compare", a, c, "--store", str(store.path)) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "no per-subject scores" in out and "+0.0500" in out
    assert cli("runs", "compare", a, b, "--store", str(store.path)) == 0
    assert "paired Wilcoxon signed-rank test" in capsys.readouterr().out


def test_compare_an_unknown_id_names_recent_ids(tmp_path, capsys):
    store = Store(tmp_path / "s.sqlite")
    a = stored_run(store)
    assert cli("runs", "compare", a, "nope", "--store", str(store.path)) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "run id 'nope' not found" in err and a in err


def test_a_mistyped_id_names_the_closest(tmp_path, capsys):
    store = Store(tmp_path / "s.sqlite")
    ids = [stored_run(store) for _ in range(4)]
    typo = ids[0][:9] + ids[0][10:]  # one digit of the time left out
    assert cli("runs", "delete", typo, "--yes", "--store", str(store.path)) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"run id '{typo}' not found" in err and f"closest: {ids[0]}" in err
    assert len(store.runs()) == 4


def test_delete_asks_removes_the_run_and_its_files_only(tmp_path, capsys, monkeypatch):
    store = Store(tmp_path / "s.sqlite")
    keep = stored_run(store, weights=True)
    gone = stored_run(store, weights=True)
    folder = store.artifacts_root / gone
    monkeypatch.setattr("sys.stdin", io.StringIO("n\n"))
    assert cli("runs", "delete", gone, "--store", str(store.path)) == 2  # no terminal: refused
    assert "give --yes" in capsys.readouterr().err and folder.is_dir()
    assert cli("runs", "delete", gone, "--yes", "--store", str(store.path)) == 0
    assert [r["run_id"] for r in store.runs()] == [keep]
    assert not folder.exists() and (store.artifacts_root / keep / "model.safetensors").is_file()


def test_export_writes_the_record_metrics_and_weights(tmp_path, capsys):
    store = Store(tmp_path / "s.sqlite")
    run_id = stored_run(store, weights=True, subjects=[("test", "s1", {"dice": [1, .5, .5]})])
    out = tmp_path / "export"
    assert cli("runs", "export", run_id, str(out), "--store", str(store.path)) == 0
    assert sorted(p.name for p in out.iterdir()) == ["image_metrics.csv", "model.safetensors",
                                                     "run.json", "subject_metrics.json"]
    record = json.loads((out / "run.json").read_text())
    assert record["run_id"] == run_id and record["exported_artifacts"] == {
        "weights": "model.safetensors"}
    assert json.loads((out / "subject_metrics.json").read_text())[0]["subject"] == "s1"
    assert (out / "model.safetensors").read_bytes() == b"weights"
    (out / "run.json").write_text("mine")
    assert cli("runs", "export", run_id, str(out), "--store", str(store.path)) == 2
    assert "folder exists and is not empty" in " ".join(capsys.readouterr().err.split())
    assert (out / "run.json").read_text() == "mine"


def test_run_summary_groups_the_numbers_a_reader_compares(registry):
    metrics = {"dice": 0.8, "dice_cortical": 0.7, "dice_cancellous": 0.9, "iou": 0.6,
               "shift_dice": 0.5, "bmd_mae": 2.0, "bmd_bias": -1.0, "shift_bmd_mae": 3.0,
               "mpc_dice": 0.4, "rpc_dice": 0.5, "hd95": 9.0, "accuracy": 0.99,
               "example_dice": 0.3, "example_bmd_mae": 5.0}
    rows = summary_rows(registry, metrics, {"example": "example"})
    groups = [g for g, _, _ in rows]
    assert groups == sorted(groups, key=lambda g: ["segmentation", "cross-site", "BMD",
                                                   "robustness", "on example"].index(g))
    assert {g for g in groups} == {"segmentation", "cross-site", "BMD", "robustness",
                                   "on example"}
    by_title = {(g, t): v for g, t, v in rows}
    assert by_title[("cross-site", "Cross-site Dice")] == 0.5
    assert by_title[("on example", "Dice")] == 0.3
    assert "accuracy" not in {t for _, t, _ in rows}  # kept for show and --json
    assert metric_group("shift_bmd_mae") == "BMD" and metric_group("rpc_dice") == "robustness"
