"""Device and precision resolution (``--device``, ``--precision``) and the execution settings a
training step runs under, on the CPU (CUDA branches are covered by benchmarks/gpu_check.sh)."""

from __future__ import annotations

import pytest
import torch

from jmedbench.engine.devices import (Execution, available_devices, cpu_has_fast_bf16,
                                      resolve_device,
                                      resolve_execution, resolve_precision)
from jmedbench.errors import UserError
from jmedbench.store import Store

AVX2_ONLY = frozenset({"sse4_2", "avx", "avx2", "fma"})
AVX512_BF16 = AVX2_ONLY | {"avx512f", "avx512_bf16"}
AMX = AVX2_ONLY | {"amx_tile", "amx_bf16"}


def test_cpu_and_auto_resolve_to_a_device_this_machine_has():
    assert resolve_device("cpu") == "cpu"
    assert resolve_device(" Auto ") in available_devices()
    if torch.cuda.is_available():
        assert resolve_device("auto") == "cuda:0"


@pytest.mark.parametrize("name,match", [("gpu", "expected auto"), ("cuda:x", "expected auto"),
                                        ("", "expected auto")])
def test_a_misspelt_device_is_a_user_error(name, match):
    with pytest.raises(UserError, match=match):
        resolve_device(name)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
@pytest.mark.parametrize("name", ["cuda", "cuda:1"])
def test_a_missing_gpu_is_refused_not_replaced_by_the_cpu(name):
    with pytest.raises(UserError, match="no CUDA GPU") as raised:
        resolve_device(name)
    assert "available: cpu" in str(raised.value)


@pytest.mark.parametrize("flags,expected", [(AVX2_ONLY, "fp32"), (AVX512_BF16, "bf16"),
                                            (AMX, "bf16")])
def test_auto_precision_on_the_cpu_is_bf16_only_where_it_is_native(flags, expected):
    assert cpu_has_fast_bf16(flags) is (expected == "bf16")
    assert resolve_precision("auto", "cpu", flags) == expected


def test_explicit_precisions_and_bad_ones():
    assert resolve_precision("fp32", "cpu") == "fp32"
    assert resolve_precision("BF16", "cpu") == "bf16"
    with pytest.raises(UserError, match="fp16: not on the CPU"):
        resolve_precision("fp16", "cpu")
    with pytest.raises(UserError, match="expected one of auto, fp32, bf16, fp16"):
        resolve_precision("half", "cpu")


def test_channels_last_follows_bf16_on_the_cpu_unless_given():
    fp32 = resolve_execution("cpu", "fp32")
    bf16 = resolve_execution("cpu", "bf16")
    assert (fp32.channels_last, bf16.channels_last) == (False, True)
    assert resolve_execution("cpu", "fp32", channels_last=True).channels_last
    assert fp32.to_dict()["accelerator"] and fp32.to_dict()["device"] == "cpu"
    with pytest.raises(UserError, match="channels_last"):
        resolve_execution("cpu", "fp32", channels_last="yes")


def _tiny_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(),
                               torch.nn.Conv2d(8, 3, 3, padding=1))


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_a_training_step_runs_in_the_chosen_format_and_layout(precision):
    execution = resolve_execution("cpu", precision)
    model = execution.place_model(_tiny_model())
    x = execution.place_batch(torch.randn(2, 1, 16, 16))
    y = torch.randint(0, 3, (2, 16, 16))
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        with execution.autocast():
            logits = model(x)
            loss = torch.nn.functional.cross_entropy(logits.float(), y)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    expected_dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    assert logits.dtype == expected_dtype
    assert model[0].weight.dtype == torch.float32            # weights stay fp32
    layout = torch.channels_last if execution.channels_last else torch.contiguous_format
    assert model[0].weight.is_contiguous(memory_format=layout)
    assert execution.grad_scaler() is None
    assert losses[-1] < 0.9 * losses[0]


def test_execution_is_a_frozen_record():
    execution = Execution("cpu", "fp32", False, "test cpu")
    with pytest.raises(AttributeError):
        execution.device = "cuda:0"  # type: ignore[misc]


# -- the options reach a run: config, training, prediction, the store ------------------------

def _tiny(**overrides):
    from jmedbench.config import build_config

    return build_config("quick", overrides={"train.steps": 6, "data.image_size": 32,
                                            "model": "unet", "strategy": "baseline",
                                            **overrides})


def test_a_run_records_where_and_how_it_ran_and_repeats_itself(registry, tmp_path):
    from jmedbench.engine.run import execute
    from jmedbench.store import Store, clean_nan

    store = Store(tmp_path / "s.sqlite")
    a = execute(registry, _tiny(device="cpu", precision="fp32"), store)
    b = execute(registry, _tiny(device="cpu", precision="fp32"), store)
    assert clean_nan(a.metrics) == clean_nan(b.metrics)  # same seed, device, precision
    record = store.get_run(a.run_id)
    for where in (record["provenance"]["execution"], record["details"]["execution"]):
        assert where["device"] == "cpu" and where["precision"] == "fp32"
        assert where["channels_last"] is False and where["accelerator"]
    assert record["config"]["device"] == "cpu"
    assert record["provenance"]["model"] == {"name": record["model"], "plugin": "zoo",
                                             "libraries": {}}


def test_bf16_with_channels_last_trains_pretrains_and_predicts(registry, tmp_path):
    """sas = ssl pre-training + stn + aug: every part runs under bf16 autocast in NHWC."""
    from jmedbench.engine.run import execute
    from jmedbench.store import Store

    store = Store(tmp_path / "s.sqlite")
    cfg = _tiny(strategy="sas", precision="bf16", **{"strategy.ssl_iterations": 2})
    result = execute(registry, cfg, store)
    execution = store.get_run(result.run_id)["details"]["execution"]
    assert (execution["precision"], execution["channels_last"]) == ("bf16", True)
    assert 0.0 <= result.metrics["dice"] <= 1.0


def test_a_backend_that_runs_on_the_cpu_in_fp32_only():
    limits = {"backend": "jittor", "backend_devices": ("cpu",), "backend_precisions": ("fp32",)}
    chosen = resolve_execution("auto", "auto", **limits)
    assert (chosen.device, chosen.precision) == ("cpu", "fp32")
    with pytest.raises(UserError, match="backend 'jittor' trains in fp32 only"):
        resolve_execution("cpu", "bf16", **limits)


def test_a_bad_device_option_is_one_line_exit_2_and_stores_nothing(cli_in_process, tmp_path):
    """(The other refusals are the resolver's, tested above; one through the command is
    enough.)"""
    store = tmp_path / "s.sqlite"
    out = cli_in_process("run", "--model", "unet", "--strategy", "baseline", "--profile", "quick",
                         "--store", str(store), "--precision", "fp16", "--device", "cpu")
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip().splitlines() == [
        "error: --precision fp16: not on the CPU (no fast fp16 kernels, and a gradient scaler "
        "is a CUDA tool); use bf16 or fp32"]
    assert "Traceback" not in out.stderr
    assert not store.exists() or Store(store).runs() == []


def test_device_keys_in_a_config_file(tmp_path):
    from jmedbench.config import build_config

    path = tmp_path / "c.toml"
    path.write_text('[run]\ndevice = "cpu"\nprecision = "bf16"\n[train]\nchannels_last = "off"\n')
    cfg = build_config("quick", path)
    assert (cfg.device, cfg.precision, cfg.train.channels_last) == ("cpu", "bf16", "off")
    assert not resolve_execution(cfg.device, cfg.precision, cfg.train.channels_last).channels_last


def test_bench_passes_the_device_options_to_every_entry_and_keys_them(registry):
    from jmedbench.engine.bench import entry_command, expand_matrix
    from jmedbench.engine.devices import check_spelling

    plain = expand_matrix(registry, "unet", "baseline", "phantom", "0", "quick")
    bf16 = expand_matrix(registry, "unet", "baseline", "phantom", "0", "quick",
                         execution=("--device", "cpu", "--precision", "bf16"))
    entry = plain.entries[0]
    assert entry_command(bf16, entry)[-4:] == ["--device", "cpu", "--precision", "bf16"]
    assert plain.key(entry) != bf16.key(entry)  # a bf16 matrix never resumes an fp32 one
    assert "--device" not in entry_command(plain, entry)
    check_spelling("cuda:3", "fp16")  # a launcher need not have the GPUs its jobs get
    with pytest.raises(UserError, match="--device 'gpu': expected"):
        check_spelling("gpu", None)
