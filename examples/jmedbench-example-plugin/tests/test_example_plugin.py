"""The outside plugin is found through the entry point and runs like a built-in model."""

import json
import subprocess
import sys

import torch

from jmedbench.registry import get_registry


def test_listed_by_jmedbench():
    registry = get_registry()
    assert registry.plugins["example"].distribution == "jmedbench-example-plugin"
    assert registry.model("dsc-unet").family == "unet"


def test_forward_shape():
    model = get_registry().model("dsc-unet").factory(in_channels=1, num_classes=3, width=8)
    assert model(torch.zeros(2, 1, 64, 48)).shape == (2, 3, 64, 48)


def test_runs_from_the_cli(tmp_path):
    out = subprocess.run([sys.executable, "-m", "jmedbench", "run", "--model", "dsc-unet",
                          "--profile", "quick", "--steps", "10", "--json",
                          "--store", str(tmp_path / "s.sqlite")],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert 0.0 <= json.loads(out.stdout)["dice"] <= 1.0


def test_passes_the_conformance_kit():
    from jmedbench.testing import check_model

    report = check_model("dsc-unet")
    assert not report.failed
