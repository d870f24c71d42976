"""Leaderboards from the store: entries aggregated over seeds, tables, escaping, an empty store,
and the HTML page loaded, sorted and checked in headless Chromium."""

from __future__ import annotations

import csv
import json
import os
import shutil
import re
import subprocess

import pytest
from PIL import Image

from jmedbench.leaderboard import build
from jmedbench.leaderboard.aggregate import collect_entries
from jmedbench.stats import mean_ci
from jmedbench.store import Store


def add_run(store, model, strategy, seed, dice, bmd_mae=5.0):
    run_id = store.begin_run({"model": model, "strategy": strategy, "dataset": "phantom",
                              "profile": "quick", "seed": seed, "backend": "torch"},
                             {"versions": {"torch": "2"}, "cpu": "test cpu", "git_commit": "abc"})
    store.finish_run(run_id, metrics={"dice": dice, "shift_dice": dice - 0.1, "bmd_mae": bmd_mae},
                     timings={}, details={"params": 1_000_000, "gflops": 1.5,
                                          "train": {"images_per_second": 10.0}}, image_rows=[])
    return run_id


def test_mean_ci_by_hand():
    out = mean_ci([0.8, 0.9, 1.0])
    assert out["mean"] == pytest.approx(0.9)
    # t(0.975, 2) = 4.302653; sd = 0.1; half = 4.302653 * 0.1 / sqrt(3)
    assert out["ci95"][1] - 0.9 == pytest.approx(4.302653 * 0.1 / 3 ** 0.5, rel=1e-5)
    assert mean_ci([0.5]) == {"mean": 0.5, "ci95": None, "n": 1}
    assert mean_ci([]) == {"mean": None, "ci95": None, "n": 0}


def test_entries_aggregate_seeds_and_rank_by_dice(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    add_run(store, "unet", "baseline", 0, 0.90)
    add_run(store, "unet", "baseline", 1, 0.92)
    add_run(store, "segnet", "baseline", 0, 0.95)
    failed = store.begin_run({"model": "bad", "strategy": "baseline", "seed": 0}, {})
    store.fail_run(failed, "boom")
    entries = collect_entries(store)
    assert [e["model"] for e in entries] == ["segnet", "unet"]  # failed runs are not entries
    unet = entries[1]
    assert unet["seeds"] == [0, 1] and unet["metrics"]["dice"]["mean"] == pytest.approx(0.91)
    assert unet["params"] == 1_000_000 and unet["gflops"] == 1.5
    assert unet["git_commit"] == "abc" and unet["hardware"]["cpu"] == "test cpu"


def test_an_entry_carries_its_model_libraries_versions_and_plugin(tmp_path):
    from jmedbench.provenance import model_provenance
    from jmedbench.registry import get_registry

    registry = get_registry()
    zoo = model_provenance(registry, "unet")
    assert zoo == {"name": "unet", "plugin": "zoo", "libraries": {}}
    store = Store(tmp_path / "s.sqlite")
    run_id = store.begin_run({"model": "unet", "strategy": "baseline", "dataset": "phantom",
                              "profile": "quick", "seed": 0, "backend": "torch"},
                             {"versions": {"torch": "2"},
                              "model": {"name": "unet", "plugin": "mylib-plugin",
                                        "libraries": {"mylib": "1.2.3", "absent": None}}})
    store.finish_run(run_id, metrics={"dice": 0.9}, timings={}, details={}, image_rows=[])
    old = add_run(store, "segnet", "baseline", 0, 0.8)  # stored before runs named their plugin
    assert old
    entries = {e["model"]: e for e in collect_entries(store, registry)}
    assert entries["unet"]["versions"] == {"torch": "2", "mylib": "1.2.3"}
    assert entries["unet"]["plugin"] == "mylib-plugin"
    assert entries["segnet"]["plugin"] == "zoo"  # from the registry


def test_build_writes_every_format_and_escapes(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    add_run(store, "<script>alert(1)</script>", "baseline", 0, 0.5)
    add_run(store, "unet", "sas", 0, 0.9)
    out = tmp_path / "lb"
    summary = build(store, out, "jmedbench leaderboard build")
    assert summary == {"entries": 2, "models": 2, "out": str(out),
                       "figure": str(out / "leaderboard.png"), "comparisons": 0,
                       "ranking_figures": []}  # no subject rows: nothing ranked over subjects
    with Image.open(out / "leaderboard.png") as figure:  # a real PNG, two panels wide
        assert figure.format == "PNG" and figure.width > figure.height
    assert len(list((out / "entries").glob("*.json"))) == 2
    page = (out / "index.html").read_text()
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page
    # no external assets: nothing loaded from a URL (the page's own data and script inline)
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//|url\(|@import""", page)
    assert "<script src" not in page and "<link" not in page
    rows = list(csv.DictReader((out / "leaderboard.csv").open()))
    assert rows[0]["model"] == "unet" and float(rows[0]["dice"]) == 0.9
    assert "| 1 | unet | sas |" in (out / "leaderboard.md").read_text()
    readme = (out / "README.md").read_text()
    assert (f"--strategies baseline,sas --datasets phantom --profile quick --seeds 0 "
            f"--store {store.path}") in readme  # derived from the stored runs
    assert "The 2 runs took" in readme


def test_readme_compares_each_strategy_with_baseline_model_by_model(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    for model, base, sas in (("unet", 0.90, 0.95), ("segnet", 0.80, 0.70), ("enet", 0.60, 0.70)):
        add_run(store, model, "baseline", 0, base, bmd_mae=4.0)
        add_run(store, model, "sas", 0, sas, bmd_mae=5.0)
    build(store, tmp_path / "lb", "jmedbench leaderboard build")
    readme = (tmp_path / "lb" / "README.md").read_text()
    assert "| sas | clean Dice | 2 / 3 | +0.050 |" in readme       # diffs +0.05, -0.10, +0.10
    assert "| sas | BMD MAE (HU) | 0 / 3 | +1.000 |" in readme     # lower is better


def test_empty_store_gives_empty_but_valid_leaderboard(tmp_path, cli_in_process):
    store = tmp_path / "s.sqlite"
    Store(store)
    out = cli_in_process("leaderboard", "build", "--store", str(store),
                         "--out", str(tmp_path / "lb"), "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["entries"] == 0
    assert json.loads((tmp_path / "lb" / "leaderboard.json").read_text()) == []
    assert "No completed runs" in (tmp_path / "lb" / "leaderboard.md").read_text()
    assert not (tmp_path / "lb" / "leaderboard.png").exists()  # nothing to plot
    assert "No completed runs" in (tmp_path / "lb" / "README.md").read_text()


def test_missing_store_is_one_line(tmp_path, cli_in_process):
    out = cli_in_process("leaderboard", "build", "--store", str(tmp_path / "none.sqlite"))
    assert out.returncode == 2 and "does not exist" in out.stderr


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not installed (.ci/run "
                    "installs Debian's chromium)")
def test_html_loads_sorts_and_shows_every_model_in_chromium(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    dice = {"unet": 0.90, "segnet": 0.95, "enet": 0.80, "fcn8s": 0.85}
    for model, value in dice.items():
        add_run(store, model, "baseline", 0, value, bmd_mae=100 * (1 - value))
    build(store, tmp_path / "lb", "test")
    page = (tmp_path / "lb" / "index.html").resolve()

    def rendered(fragment: str) -> str:
        out = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
             "--virtual-time-budget=2000", "--dump-dom", page.as_uri() + fragment],
            capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr[-2000:]
        return out.stdout

    def model_order(dom: str) -> list[str]:
        import re
        return re.findall(r'<tr data-model="([^"]+)"', dom)

    dom = rendered("")
    assert sorted(model_order(dom)) == sorted(dice)                   # every model shown
    assert model_order(dom) == ["segnet", "unet", "fcn8s", "enet"]    # ranked by Dice
    by_bmd = rendered("#sort=bmd_mae:asc")
    assert 'data-sorted="bmd_mae:asc"' in by_bmd                       # the script ran
    assert model_order(by_bmd) == ["segnet", "unet", "fcn8s", "enet"]
    by_name = rendered("#sort=model:asc")
    assert model_order(by_name) == ["enet", "fcn8s", "segnet", "unet"]


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not installed (.ci/run "
                    "installs Debian's chromium)")
def test_page_draws_blob_plot_significance_map_and_scatter_with_filters(tmp_path):
    """Five entries with per-subject rows (tests/leaderboard_stores.py): the page's script
    draws one blob column, one significance-map row and one scatter point per entry shown,
    the red cells are exactly the significant pairs, the filters hide rows and points, and the
    screenshot has the map's red and the blob plot's blue in it."""
    from leaderboard_stores import demo_store

    store = Store(tmp_path / "s.sqlite")
    demo_store(store, seeds=(0,), n=10)
    build(store, tmp_path / "lb", "test", n_resamples=100)
    page = (tmp_path / "lb" / "index.html").resolve()
    [comparison] = json.loads((tmp_path / "lb" / "ranking.json").read_text())
    chromium = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync",
                f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=2000"]

    def dom(fragment: str) -> str:
        out = subprocess.run(chromium + ["--dump-dom", page.as_uri() + fragment],
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr[-2000:]
        return out.stdout

    drawn = dom("")
    assert 'data-drawn="dice"' in drawn                                   # the script ran
    assert drawn.count('<g class="entry"') == 5                           # blob plot columns
    assert drawn.count('class="interval"') == 5 and drawn.count('class="freq"') >= 5
    assert drawn.count('class="cell ') == 25                               # 5 x 5 map
    significant = sum(map(sum, comparison["scores"]["dice"]["significant"]))
    assert drawn.count('class="cell sig"') == significant > 0
    assert drawn.count('class="point"') == 5                              # Dice vs BMD scatter
    assert "ranking stability" in drawn
    first = re.search(r"<tr data-model=.*?</tr>", drawn).group(0)          # unet/sas
    assert "n/a" not in first and "1 [1–1]" in first                       # ranked, tight

    sas = dom("#strategy=sas")
    assert sas.count('style="display: none;"') == 3                       # 3 baseline rows hidden
    assert sas.count('<g class="entry"') == 2 and sas.count('class="point"') == 2
    assert sas.count('class="cell ') == 4 and "2 of 5 entries shown" in sas
    by_bmd = dom("#score=bmd_abs_error")
    assert 'data-drawn="bmd_abs_error"' in by_bmd
    last = re.findall(r'<g class="entry" data-id="([^"]+)"', by_bmd)[-1]
    assert last.startswith("empty__")                                     # predicts nothing: last

    shot = tmp_path / "page.png"
    out = subprocess.run(chromium + ["--window-size=1200,2000", f"--screenshot={shot}",
                                     page.as_uri()], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0 and shot.exists(), out.stderr[-2000:]
    with Image.open(shot) as image:
        colours = {c for _, c in image.convert("RGB").getcolors(maxcolors=1 << 20)}
    assert (0xd9, 0x53, 0x4f) in colours                                  # significant cells
    assert any(b > 150 and r < 150 and g < 200 for r, g, b in colours)     # blue rank dots


def _run_on(store, model, seed, execution, images_per_second):
    run_id = store.begin_run({"model": model, "strategy": "baseline", "dataset": "phantom",
                              "profile": "quick", "seed": seed, "backend": "torch"},
                             {"cpu": "AMD EPYC", "execution": execution})
    store.finish_run(run_id, metrics={"dice": 0.5}, timings={"train": 1.0},
                     details={"train": {"images_per_second": images_per_second}},
                     image_rows=[])


CPU = {"device": "cpu", "precision": "fp32", "channels_last": False, "accelerator": "AMD EPYC"}
GPU = {"device": "cuda:0", "precision": "bf16", "channels_last": True, "accelerator": "NVIDIA H200"}


def test_speeds_from_different_devices_are_never_compared_silently(tmp_path):
    from jmedbench.leaderboard.render import render_markdown
    from jmedbench.registry import get_registry

    store = Store(tmp_path / "s.sqlite")
    _run_on(store, "unet", 0, CPU, 10.0)
    _run_on(store, "segnet", 0, GPU, 900.0)
    _run_on(store, "segnet", 1, CPU, 12.0)  # one entry whose seeds ran on two devices
    entries = {e["model"]: e for e in collect_entries(store, get_registry())}
    assert entries["unet"]["execution"] == "cpu fp32 (AMD EPYC)"
    assert entries["unet"]["train_images_per_s"] == 10.0
    assert entries["segnet"]["train_images_per_s"] is None  # no mean over two devices
    assert "cuda:0 bf16 (NVIDIA H200)" in entries["segnet"]["execution"]
    from jmedbench.columns import table_columns
    table = render_markdown(list(entries.values()), table_columns(get_registry(), "leaderboard"),
                            "jmedbench leaderboard build")
    assert "Trained on (speeds differ by device)" in table
    same = Store(tmp_path / "t.sqlite")
    _run_on(same, "unet", 0, CPU, 10.0)
    _run_on(same, "segnet", 0, CPU, 12.0)
    table = render_markdown(collect_entries(same, get_registry()),
                            table_columns(get_registry(), "leaderboard"), "x")
    assert "Trained on" not in table


def test_a_table_of_several_plugins_names_each_entrys_plugin(tmp_path):
    """The zoo beside a library: every row says whose implementation it scored; a table of one
    plugin's models has no such column. The CSV always has it."""
    from jmedbench.columns import table_columns
    from jmedbench.leaderboard.render import render_csv, render_markdown
    from jmedbench.registry import get_registry

    registry = get_registry()
    columns = table_columns(registry, "leaderboard")
    store = Store(tmp_path / "s.sqlite")
    add_run(store, "unet", "baseline", 0, 0.9)
    add_run(store, "segnet", "baseline", 0, 0.8)
    one = collect_entries(store, registry)
    assert "Plugin" not in render_markdown(one, columns, "x")
    run_id = store.begin_run({"model": "mylib-unet", "strategy": "baseline",
                              "dataset": "phantom", "profile": "quick", "seed": 0,
                              "backend": "torch"},
                             {"model": {"name": "mylib-unet", "plugin": "mylib",
                                        "libraries": {"mylib": "1.0"}}})
    store.finish_run(run_id, metrics={"dice": 0.85}, timings={}, details={}, image_rows=[])
    both = collect_entries(store, registry)
    table = render_markdown(both, columns, "x").splitlines()
    header = next(line for line in table if line.startswith("| Rank"))
    plugin_col = header.split(" | ").index("Plugin")
    rows = {line.split(" | ")[1]: line.split(" | ")[plugin_col] for line in table
            if line.startswith("| ") and line[2].isdigit()}
    assert rows == {"unet": "zoo", "mylib-unet": "mylib", "segnet": "zoo"}
    csv_rows = list(csv.DictReader(render_csv(both, columns).splitlines()))
    assert {r["model"]: r["plugin"] for r in csv_rows} == rows


def test_runs_split_into_stretches_where_nothing_ran_for_ten_minutes():
    """The README times each matrix on its own (the zoo's, the libraries' days later): one
    span over both would count the days between them."""
    from jmedbench.leaderboard.readme import run_stretches

    def run(i, start, end):
        return {"run_id": str(i), "created": start, "finished": end}

    runs = [run(0, 0, 100), run(1, 50, 700), run(2, 1200, 1300),   # 500 s idle: same stretch
            run(3, 1300 + 601, 2000),                              # 601 s idle: a new one
            run(4, 90_000, 90_100), run(5, 90_010, None)]          # unfinished: its start
    assert [[r["run_id"] for r in s] for s in run_stretches(list(reversed(runs)))] == \
        [["0", "1", "2"], ["3"], ["4", "5"]]
    assert run_stretches([]) == []
