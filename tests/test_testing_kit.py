"""The conformance kit catches each kind of broken model with a message naming the fault, and
passes the reference UNet (with the learning check marked slow)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from jmedbench.hookspecs import hookimpl
from jmedbench.registry import Registry, get_registry
from jmedbench.specs import ModelSpec
from jmedbench.testing import (FAST_CHECKS, CheckFailed, ModelConformance, check_model,
                               default_sizes, learning_image_size)


class Good(nn.Module):
    """A minimal conforming model: conv, BatchNorm, 1x1 head."""

    def __init__(self, in_channels: int = 1, num_classes: int = 3, width: int = 4) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1),
                                  nn.BatchNorm2d(width), nn.ReLU())
        self.head = nn.Conv2d(width, num_classes, 1)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(self.body(x), 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


class WrongSize(Good):
    def forward(self, x):
        return F.avg_pool2d(super().forward(x), 2)  # logits at half resolution


class DeadParameter(Good):
    def __init__(self, **kw):
        super().__init__(**kw)
        self.forgotten = nn.Conv2d(4, 4, 1)  # built, saved, counted, never used


class NoisyEval(Good):
    def forward(self, x):
        return super().forward(x) + 0.01 * torch.randn(x.shape[0], 3, *x.shape[2:])


class Float64(Good):
    def forward(self, x):
        return super().forward(x).double()


class BatchStatsInEval(Good):
    def forward(self, x):
        bn = self.body[1]  # always normalise with the batch's statistics, even in eval
        y = F.batch_norm(self.body[0](x), bn.running_mean, bn.running_var, bn.weight, bn.bias,
                         training=True)
        return self.head(F.relu(y))


class Reseeds(Good):
    def __init__(self, **kw):
        torch.manual_seed(1234)  # hides every seed the user gives
        super().__init__(**kw)


class HiddenState(Good):
    def __init__(self, **kw):
        super().__init__(**kw)
        self.register_buffer("offset", torch.randn(1, 3, 1, 1), persistent=False)

    def forward(self, x):
        return super().forward(x) + self.offset


class TupleOutput(Good):
    def forward(self, x):
        return super().forward(x), x


class NoEncode(nn.Module):
    def __init__(self, in_channels=1, num_classes=3):
        super().__init__()
        self.head = nn.Conv2d(in_channels, num_classes, 1)

    def forward(self, x):
        return self.head(x)


class CrashesOnNonSquare(Good):
    def forward(self, x):
        assert x.shape[2] == x.shape[3], "square inputs only"
        return super().forward(x)


class NeverBone(Good):
    """Trains normally, but in eval mode the background logit always wins: the seed library's
    silent failure (all background at test time)."""

    def forward(self, x):
        y = super().forward(x)
        if self.training:
            return y
        return torch.cat([y[:, :1] + 100.0, y[:, 1:]], 1)


class ConstantOutput(Good):
    """Gradients exist but cannot change the output: the loss cannot fall."""

    def forward(self, x):
        return super().forward(x) * 0.0


def _spec(name, factory, **kw):
    fields = dict(family="test", description="a test model", citation="Test et al. 2024",
                  input_multiple=16, min_size=16)
    fields.update(kw)
    return ModelSpec(name, factory, **fields)


SPECS = [
    _spec("good", Good, has_encoder=True),
    _spec("wrong-size", WrongSize),
    _spec("dead-parameter", DeadParameter),
    _spec("noisy-eval", NoisyEval),
    _spec("float64", Float64),
    _spec("batch-stats-in-eval", BatchStatsInEval),
    _spec("reseeds", Reseeds),
    _spec("hidden-state", HiddenState),
    _spec("tuple-output", TupleOutput),
    _spec("no-encode", NoEncode, has_encoder=True),
    _spec("no-citation", Good, citation=""),
    _spec("square-only", CrashesOnNonSquare),
    _spec("never-bone", NeverBone),
    _spec("constant-output", ConstantOutput),
]


class BrokenModelsPlugin:
    @hookimpl
    def jmedbench_models(self):
        return SPECS

    @hookimpl
    def jmedbench_datasets(self):  # the learning check trains on the installed phantom
        return [get_registry().dataset("phantom")]


@pytest.fixture(scope="module")
def test_registry() -> Registry:
    registry = Registry()
    registry.register(BrokenModelsPlugin(), "broken-models")
    assert not registry.problems, registry.problems
    return registry


def test_a_conforming_model_passes_every_fast_check(test_registry):
    report = check_model("good", registry=test_registry)
    assert report.ok and report.passed == list(FAST_CHECKS)
    assert "(B, 3, H, W) float32 for 16x16, 32x48, 48x32" in report.result("output").detail
    assert "(2, 8, 4, 4)" in report.result("encode").detail  # width=8 was passed


@pytest.mark.parametrize("name, check, message", [
    ("wrong-size", "output", "shape (2, 3, 8, 8) for input (2, 1, 16, 16) in train mode, "
                             "expected (2, 3, 16, 16)"),
    ("dead-parameter", "backward", "2 trainable parameter(s) get no gradient (unused in "
                                   "forward; delete them or set requires_grad=False): "
                                   "forgotten.weight, forgotten.bias"),
    ("noisy-eval", "eval", "not deterministic: two eval-mode forwards of the same input "
                           "(2, 1, 16, 16) differ"),
    ("float64", "output", "dtype torch.float64 for input (2, 1, 16, 16) in train mode, "
                          "expected torch.float32"),
    ("batch-stats-in-eval", "eval", "an image's logits depend on the rest of its batch"),
    ("reseeds", "seeded_init", "seeds 0 and 1 give identical weights"),
    ("hidden-state", "state_dict", "a reloaded copy gives different eval outputs"),
    ("tuple-output", "output", "returned tuple, expected one tensor of logits"),
    ("no-encode", "encode", "has_encoder=True but the model has no encode(x) method"),
    ("no-citation", "spec", "'citation' must be a non-empty string"),
    ("square-only", "output", "forward of input (2, 1, 32, 48) raised AssertionError: "
                              "square inputs only"),
])
def test_each_fault_fails_its_check_with_a_clear_message(test_registry, name, check, message):
    with pytest.raises(AssertionError) as info:
        check_model(name, registry=test_registry)
    text = str(info.value)
    assert text.startswith(f"model '{name}' failed conformance check '{check}': "), text
    assert message in text, text


def test_message_lists_the_checks_passed_before_the_failure(test_registry):
    with pytest.raises(CheckFailed, match=r"\(passed before it: spec, build, output\)"):
        check_model("dead-parameter", registry=test_registry)


def test_report_without_raising_collects_every_failure(test_registry):
    report = check_model("noisy-eval", registry=test_registry, raise_on_failure=False)
    assert not report.ok
    # Noise also breaks the round trip; the other checks still run and pass.
    assert report.failed == ["eval", "state_dict"]
    assert report.passed == ["spec", "build", "output", "backward", "seeded_init"]
    assert report.skipped == {"encode": "the spec says has_encoder=False"}
    assert "FAIL eval" in str(report) and "ok   backward" in str(report)
    assert report.to_dict()["failed"] == ["eval", "state_dict"]


def test_default_sizes_are_allowed_and_non_square():
    spec = _spec("x", Good, input_multiple=32, min_size=64)
    assert default_sizes(spec) == [(64, 64), (96, 128), (128, 96)]
    assert learning_image_size(spec) == 64
    assert learning_image_size(_spec("y", Good, input_multiple=32, min_size=80)) == 96


def test_sizes_the_spec_does_not_allow_are_refused(test_registry):
    with pytest.raises(ValueError, match="size 24x24: 24 is not a multiple of 16 "
                                         r"\(the spec's min_size and input_multiple\)"):
        check_model("good", registry=test_registry, sizes=[24])
    report = check_model("good", registry=test_registry, sizes=[(32, 64)],
                         checks=["output"])
    assert report.passed == ["spec", "output"]


def test_the_callers_random_state_is_left_alone(test_registry):
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    check_model("good", registry=test_registry, checks=["seeded_init"])
    assert torch.equal(torch.rand(3), expected)


def test_learning_check_catches_a_model_that_never_predicts_bone(test_registry):
    with pytest.raises(CheckFailed, match="after 60 steps every test pixel is predicted as "
                                          "background"):
        check_model("never-bone", registry=test_registry, learning=True, checks=["learning"],
                    steps=60)


def test_learning_check_catches_a_loss_that_does_not_fall(test_registry):
    with pytest.raises(CheckFailed, match="the loss did not fall in 30 steps on the phantom"):
        check_model("constant-output", registry=test_registry, learning=True,
                    checks=["learning"], steps=30)


def test_the_unet_passes_the_fast_checks():
    report = check_model("unet")
    assert report.ok and report.passed == list(FAST_CHECKS)


class TestUnetConformance(ModelConformance):
    """The pytest form, as a plugin's test file uses it (the learning test is slow)."""

    model_names = ["unet"]


class TestPatternConformance(ModelConformance):
    """A pattern over a registry of one's own: each matching model becomes a test."""

    model_names = "goo*"

    def make_registry(self):
        registry = Registry()
        registry.register(BrokenModelsPlugin(), "broken-models")
        return registry


def test_the_pytest_form_raises_for_a_broken_model(test_registry):
    suite = TestPatternConformance()
    with pytest.raises(AssertionError, match="failed conformance check 'backward'"):
        suite.test_conformance("dead-parameter")


def test_learning_is_slow_decides_whether_the_default_run_trains(tmp_path):
    """``learning_is_slow = False`` puts the learning test into the default run (the library
    plugins' CI does so); by default ``-m 'not slow'`` leaves it out."""
    (tmp_path / "test_kit_marks.py").write_text(
        "from jmedbench.testing import ModelConformance\n"
        "class TestSlow(ModelConformance):\n"
        "    model_names = ['unet']\n"
        "class TestInCi(ModelConformance):\n"
        "    model_names = ['unet']\n"
        "    learning_is_slow = False\n")
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p",
                          "no:cacheprovider", "-m", "not slow", str(tmp_path)],
                         capture_output=True, text=True, cwd=tmp_path, timeout=300)
    collected = {line.split("::", 1)[1] for line in out.stdout.splitlines() if "::" in line}
    assert collected == {"TestSlow::test_conformance[unet]", "TestInCi::test_conformance[unet]",
                         "TestInCi::test_learns_on_phantom[unet]"}, out.stdout + out.stderr
