"""The Jittor backend: weight parity with the PyTorch zoo for every Jittor model, the training
loss, the spatial transformer, runs end to end, and what happens without Jittor.

Tests marked ``needs_jittor`` run only where the ``jittor`` package is installed (the jittor
environment of ``.ci/jittor.sh``); the main environment runs the others, which check that the
plugin stays out of the way when Jittor is missing.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import HAS_JITTOR, fresh_interpreter_output, jittor_module, needs_jittor

needs_no_jittor = pytest.mark.skipif(HAS_JITTOR, reason="checks the behaviour without jittor")

SIZE = 64        # every Jittor model takes 64 x 64 (input multiples are at most 32)
WIDTH = 8        # smallest sensible width: parity does not depend on it
TOLERANCE = 1e-4  # max abs difference of eval-mode logits


# -- without Jittor (the main environment) ----------------------------------------------------
def test_plugin_loads_without_importing_jittor():
    # A fresh interpreter: in this one, an earlier test may have imported Jittor already.
    probe = ("import sys\n"
             "from jmedbench.registry import get_registry\n"
             "registry = get_registry()\n"
             "registry.names('models')\n"
             "print('jittor' in registry.names('backends'), 'jittor' in sys.modules)\n")
    # registered, and listing never compiles Jittor
    assert fresh_interpreter_output(probe).split() == ["True", "False"]


@needs_no_jittor
def test_without_jittor_no_jittor_models_are_registered(registry):
    assert not [s for s in registry.specs("models") if s.backend == "jittor"]
    assert registry.problems == [] or all("jittor" not in p for p in registry.problems)


@needs_no_jittor
def test_without_jittor_the_backend_names_the_extra_to_install(cli_in_process, tmp_path):
    out = cli_in_process("run", "--model", "unet", "--backend", "jittor", "--profile", "quick",
                         "--store", str(tmp_path / "s.sqlite"))
    assert out.returncode == 2
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, out.stderr
    assert "pip install 'jmedbench[jittor]'" in lines[0]
    assert "Traceback" not in out.stderr


def test_onednn_is_laid_out_where_jittor_looks(tmp_path, monkeypatch):
    """A system oneDNN (fake files here) becomes Jittor's cached 2.2.0 copy: headers linked
    into include/, libdnnl.so linked as lib/libmkldnn.so; a second call changes nothing."""
    from jmedbench_jittor import runtime

    include, libdir, home = tmp_path / "include", tmp_path / "lib", tmp_path / "home"
    (include / "oneapi" / "dnnl").mkdir(parents=True)
    for name in ("dnnl.hpp", "dnnl.h", "dnnl_config.h"):
        (include / name).write_text("// header\n")
    libdir.mkdir()
    (libdir / "libdnnl.so").write_bytes(b"\x7fELF")
    monkeypatch.setattr(runtime, "SYSTEM_INCLUDE", include)
    monkeypatch.setattr(runtime, "SYSTEM_LIB_DIRS", (libdir,))
    monkeypatch.setenv("JITTOR_HOME", str(home))

    assert not runtime.onednn_ready()
    assert runtime.install_system_onednn()
    root = home / ".cache" / "jittor" / "mkl" / "dnnl_lnx_2.2.0_cpu_gomp"
    assert (root / "lib" / "libmkldnn.so").resolve() == (libdir / "libdnnl.so").resolve()
    assert (root / "include" / "dnnl.hpp").read_text() == "// header\n"
    assert (root / "include" / "oneapi" / "dnnl").is_dir()
    assert runtime.install_system_onednn()  # idempotent


def test_without_system_onednn_nothing_is_laid_out(tmp_path, monkeypatch):
    from jmedbench_jittor import runtime

    monkeypatch.setattr(runtime, "SYSTEM_INCLUDE", tmp_path / "nothing")
    monkeypatch.setenv("JITTOR_HOME", str(tmp_path / "home"))
    assert not runtime.install_system_onednn()
    assert not (tmp_path / "home" / ".cache" / "jittor" / "mkl").exists()


# -- with Jittor ------------------------------------------------------------------------------

def _torch_and_jittor(name: str, seed: int = 0):
    """The torch zoo model and its Jittor twin, built with the same options."""
    import torch

    from jmedbench_jittor import JITTOR_MODELS, jittor_class, torch_spec

    spec = torch_spec(name)
    kwargs = dict(spec.defaults)
    if "width" in kwargs:
        kwargs["width"] = WIDTH
    torch.manual_seed(seed)
    return spec.factory(1, 3, **kwargs), jittor_class(name)(1, 3, **kwargs)


def _randomise(model, seed: int = 1) -> None:
    """Every parameter and BatchNorm statistic random (positive variances), so that parity
    covers the weights of every layer, not zero-initialised heads or unit statistics."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, value in model.state_dict().items():
            if not value.is_floating_point():
                continue
            noise = torch.randn(value.shape, generator=generator) * 0.2
            if name.endswith("running_var"):
                value.copy_(0.5 + noise.abs())
            elif name.endswith("weight") and value.ndim == 1:  # norm scales, PReLU slopes
                value.copy_(1.0 + noise)
            elif value.ndim == 1:  # biases, running means
                value.copy_(noise)
            else:  # conv/linear weights: keep their scale, undo zero initialisations
                value.add_(noise * 0.1)


def _logits_torch(model, x: np.ndarray) -> np.ndarray:
    import torch

    model.eval()
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


def _logits_jittor(model, x: np.ndarray) -> np.ndarray:
    jt = jittor_module()

    model.eval()
    with jt.no_grad():
        return model(jt.array(x)).numpy()


JITTOR_MODEL_NAMES = sorted(__import__("jmedbench_jittor").JITTOR_MODELS)


def test_at_least_ten_architectures_have_a_jittor_twin():
    assert len(JITTOR_MODEL_NAMES) >= 10


@needs_jittor
@pytest.mark.parametrize("name", JITTOR_MODEL_NAMES)
def test_torch_weights_give_the_same_outputs_in_jittor_and_back(name):
    """torch -> Jittor: same logits within 1e-4; Jittor -> a fresh torch model: the same."""
    import torch

    from jmedbench_jittor.parity import load_into_torch, load_torch_state

    torch_model, jittor_model = _torch_and_jittor(name)
    _randomise(torch_model)
    load_torch_state(jittor_model, torch_model.state_dict())
    x = np.random.default_rng(0).normal(0.2, 0.5, (2, 1, SIZE, SIZE)).astype(np.float32)
    expected = _logits_torch(torch_model, x)
    got = _logits_jittor(jittor_model, x)
    assert got.shape == expected.shape == (2, 3, SIZE, SIZE)
    assert np.abs(got - expected).max() < TOLERANCE, np.abs(got - expected).max()

    torch.manual_seed(123)
    fresh, _ = _torch_and_jittor(name, seed=123)
    assert np.abs(_logits_torch(fresh, x) - expected).max() > 1e-3  # really another start
    load_into_torch(fresh, jittor_model)
    assert np.abs(_logits_torch(fresh, x) - expected).max() < TOLERANCE


@needs_jittor
def test_a_layout_mismatch_is_an_error_not_a_warning():
    from jmedbench_jittor.parity import load_torch_state

    torch_model, jittor_model = _torch_and_jittor("unet")
    state = dict(torch_model.state_dict())
    state.pop("head.bias")
    with pytest.raises(ValueError, match="1 missing .*head.bias"):
        load_torch_state(jittor_model, state)
    state = dict(torch_model.state_dict())
    state["head.weight"] = state["head.weight"][:2]
    with pytest.raises(ValueError, match="another shape .*head.weight"):
        load_torch_state(jittor_model, state)


@needs_jittor
def test_registered_jittor_models_share_the_torch_specs_and_initial_weights(registry):
    import torch

    from jmedbench_jittor.parity import jittor_state

    jittor_names = {s.name for s in registry.specs("models") if s.backend == "jittor"}
    assert jittor_names == set(JITTOR_MODEL_NAMES)
    for name in ("unet", "enet"):
        jspec, tspec = registry.model(name, "jittor"), registry.model(name, "torch")
        assert (jspec.description, jspec.citation, jspec.defaults, jspec.input_multiple) == (
            tspec.description, tspec.citation, tspec.defaults, tspec.input_multiple)
    torch.manual_seed(7)
    torch_model = registry.model("unet").factory(1, 3, width=WIDTH)
    torch.manual_seed(7)
    jittor_model = registry.model("unet", "jittor").factory(1, 3, width=WIDTH)
    for key, value in jittor_state(jittor_model).items():
        assert torch.equal(value, torch_model.state_dict()[key]), key
    with pytest.raises(TypeError):  # the torch factory's signature: unknown options refused
        registry.model("enet", "jittor").factory(1, 3, width=8)


@needs_jittor
def test_loss_and_one_training_step_match_torch():
    """Same logits and labels: the same Dice + CE loss; same model and batch in training mode
    (BatchNorm on batch statistics): the same loss and the same gradient for every parameter.
    (Weights after an Adam step are not compared: its first step is nearly sign(gradient), so
    gradients that differ by float rounding near zero move weights by up to the learning rate.)"""
    import torch

    jt = jittor_module()
    from jmedbench.engine.train import dice_ce_loss as torch_loss
    from jmedbench_jittor.loss import dice_ce_loss, trainable
    from jmedbench_jittor.parity import load_torch_state

    rng = np.random.default_rng(3)
    logits = rng.normal(size=(2, 3, 16, 16)).astype(np.float32)
    labels = rng.integers(0, 3, (2, 16, 16))
    weights = np.array([0.2, 1.3, 1.5], np.float32)
    expected = torch_loss(torch.from_numpy(logits), torch.from_numpy(labels),
                          torch.from_numpy(weights)).item()
    got = dice_ce_loss(jt.array(logits), jt.array(labels), jt.array(weights)).item()
    assert got == pytest.approx(expected, abs=1e-5)

    torch_model, jittor_model = _torch_and_jittor("unet")
    load_torch_state(jittor_model, torch_model.state_dict())
    x = rng.normal(0.2, 0.5, (2, 1, 32, 32)).astype(np.float32)
    y = rng.integers(0, 3, (2, 32, 32))
    torch_model.train()
    loss_t = torch_loss(torch_model(torch.from_numpy(x)), torch.from_numpy(y),
                        torch.from_numpy(weights))
    loss_t.backward()
    jittor_model.train()
    loss_j = dice_ce_loss(jittor_model(jt.array(x)), jt.array(y), jt.array(weights))
    assert loss_j.item() == pytest.approx(loss_t.item(), abs=1e-5)
    named = dict(torch_model.named_parameters())
    jittor_params = dict(jittor_model.state_dict())
    grads = jt.grad(loss_j, [jittor_params[k] for k in named])
    for (key, param), grad in zip(named.items(), grads):
        assert np.allclose(grad.numpy(), param.grad.numpy(), rtol=1e-3, atol=1e-6), key
    assert len(trainable(jittor_model)) == len(named)  # running statistics do not learn


@needs_jittor
def test_spatial_transformer_matches_torch_with_a_non_identity_transform():
    import torch

    from jmedbench_jittor.parity import load_torch_state
    from jmedbench_jittor.stn import SpatialTransformerSegmenter as JittorSTN
    from jmedbench_strategies.stn import SpatialTransformerSegmenter as TorchSTN

    torch_unet, jittor_unet = _torch_and_jittor("unet")
    torch_stn, jittor_stn = TorchSTN(torch_unet), JittorSTN(jittor_unet)
    with torch.no_grad():  # rotate and shift a little, so the warps really resample
        torch_stn.localisation.regressor[-1].weight.normal_(0, 0.01)
        torch_stn.localisation.regressor[-1].bias.copy_(
            torch.tensor([0.95, -0.1, 0.05, 0.1, 0.95, -0.05]))
    load_torch_state(jittor_stn, torch_stn.state_dict())
    x = np.random.default_rng(4).normal(0.2, 0.5, (2, 1, 32, 32)).astype(np.float32)
    expected, got = _logits_torch(torch_stn, x), _logits_jittor(jittor_stn, x)
    assert np.abs(got - expected).max() < TOLERANCE


@needs_jittor
@pytest.mark.parametrize("strategy", ["baseline", "aug", "stn"])
def test_runs_end_to_end_in_jittor(registry, tmp_path, strategy):
    from jmedbench.config import build_config
    from jmedbench.engine.run import execute
    from jmedbench.store import Store

    cfg = build_config("quick", overrides={"backend": "jittor", "strategy": strategy,
                                           "train.steps": 4, "data.image_size": 32})
    store = Store(tmp_path / "s.sqlite")
    result = execute(registry, cfg, store)
    record = store.get_run(result.run_id)
    assert record["status"] == "completed" and record["backend"] == "jittor"
    assert 0.0 <= record["metrics"]["dice"] <= 1.0
    assert record["details"]["strategy"]["name"] == strategy


@needs_jittor
def test_ssl_pretrains_through_the_torch_twin_and_changes_the_jittor_encoder(registry):
    from jmedbench.engine.backends import get_backend
    from jmedbench.engine.build import build_strategy
    from jmedbench.strategy import TrainContext
    from jmedbench_jittor.parity import jittor_state

    model = registry.model("unet", "jittor").factory(1, 3, width=WIDTH)
    before = jittor_state(model)
    strategy = get_backend(registry, "jittor").adapt_strategy(
        build_strategy(registry, "ssl", {"ssl_iterations": 2, "ssl_batch_size": 4}))
    images = np.random.default_rng(5).normal(100, 300, (12, 32, 32)).astype(np.float32)
    ctx = TrainContext(images, np.zeros((12, 32, 32), np.int64), None, seed=0,
                       model_spec=registry.model("unet", "jittor"))
    strategy.pretrain(model, ctx)
    after = jittor_state(model)
    assert ctx.budget["ssl_iterations"] == 2
    assert not np.allclose(after["stem.0.weight"], before["stem.0.weight"])  # encoder learnt
    assert np.allclose(after["head.weight"], before["head.weight"])  # decoder untouched


@needs_jittor
def test_a_strategy_without_a_jittor_form_is_refused(registry):
    from jmedbench.engine.backends import get_backend
    from jmedbench.errors import UserError
    from jmedbench.strategy import Strategy

    class TorchOnly(Strategy):
        name = "torch-only"

        def prepare_model(self, model, ctx):
            return model

    with pytest.raises(UserError, match="strategy 'torch-only' .* no Jittor form"):
        get_backend(registry, "jittor").adapt_strategy(TorchOnly())


@needs_jittor
def test_weight_averaging_is_refused_before_anything_trains(registry):
    """The Jittor loop keeps the last step's weights: a run asking for ``average_last`` is one
    line, not a silently different recipe."""
    from jmedbench.config import build_config
    from jmedbench.engine.pipeline import run_backend
    from jmedbench.errors import UserError

    cfg = build_config("quick", overrides={"backend": "jittor", "train.average_last": 0.5})
    with pytest.raises(UserError, match="the jittor backend does not average weights"):
        run_backend(registry, cfg)
