"""``--weights``: good files load in both formats; every bad file is one clear UserError line."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
from safetensors.torch import save_file

from jmedbench.errors import UserError
from jmedbench.weights import load_weights, read_state_dict, save_weights


class Small(nn.Module):
    def __init__(self, in_channels: int = 1, num_classes: int = 3, width: int = 4) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, width, 3, padding=1)
        self.norm = nn.BatchNorm2d(width)
        self.head = nn.Conv2d(width, num_classes, 1)

    def forward(self, x):
        return self.head(torch.relu(self.norm(self.conv(x))))


def _trained_copy() -> Small:
    torch.manual_seed(0)
    model = Small()
    model.norm.running_mean.fill_(0.25)  # a buffer too, not only parameters
    return model.eval()


def _same_outputs(a: nn.Module, b: nn.Module) -> bool:
    x = torch.randn(2, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return torch.equal(a.eval()(x), b.eval()(x))


@pytest.mark.parametrize("suffix", [".safetensors", ".pt", ".pth"])
def test_round_trip_in_each_format(tmp_path, suffix):
    source = _trained_copy()
    path = save_weights(source, tmp_path / f"w{suffix}")
    torch.manual_seed(1)
    fresh = Small()
    assert not _same_outputs(source, fresh)
    assert load_weights(fresh, path) is fresh
    assert _same_outputs(source, fresh)
    assert torch.equal(fresh.norm.running_mean, torch.full((4,), 0.25))


def test_training_checkpoint_and_data_parallel_prefix_are_unwrapped(tmp_path):
    source = _trained_copy()
    state = {f"module.{k}": v for k, v in source.state_dict().items()}
    torch.save({"epoch": 3, "state_dict": state, "optimizer": {}}, tmp_path / "ckpt.pt")
    fresh = Small()
    load_weights(fresh, tmp_path / "ckpt.pt")
    assert _same_outputs(source, fresh)


def test_half_precision_file_loads_into_float32(tmp_path):
    source = _trained_copy()
    save_file({k: v.half() if v.is_floating_point() else v
               for k, v in source.state_dict().items()}, str(tmp_path / "half.safetensors"))
    fresh = load_weights(Small(), tmp_path / "half.safetensors")
    assert fresh.conv.weight.dtype == torch.float32
    assert torch.allclose(fresh.conv.weight, source.conv.weight, atol=1e-3)


def test_missing_file(tmp_path):
    with pytest.raises(UserError, match=r"^--weights .*nothere\.pt: file not found$"):
        load_weights(Small(), tmp_path / "nothere.pt")


def test_directory(tmp_path):
    with pytest.raises(UserError, match="is a directory"):
        load_weights(Small(), tmp_path)


def test_unknown_suffix(tmp_path):
    (tmp_path / "w.ckpt").write_bytes(b"x")
    with pytest.raises(UserError, match=r"unknown weights format '\.ckpt' \(expected "
                                        r"\.safetensors, \.pt, \.pth\)"):
        load_weights(Small(), tmp_path / "w.ckpt")


@pytest.mark.parametrize("name, content, message", [
    ("bad.safetensors", b"this is not a safetensors file", "not a readable safetensors file"),
    ("bad.pt", b"this is not a pickle", "not a readable torch.save file"),
    ("empty.pt", b"", "empty or truncated file"),
])
def test_corrupt_files(tmp_path, name, content, message):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(UserError, match=message) as info:
        load_weights(Small(), tmp_path / name)
    assert "\n" not in str(info.value)


def test_truncated_torch_file(tmp_path):
    save_weights(_trained_copy(), tmp_path / "full.pt")
    data = (tmp_path / "full.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="not a readable torch.save file"):
        load_weights(Small(), tmp_path / "cut.pt")


class NotATensor:
    pass


def test_pickled_objects_are_refused_not_executed(tmp_path):
    torch.save({"conv.weight": NotATensor()}, tmp_path / "objects.pt")
    with pytest.raises(UserError, match="holds Python objects, not only tensors .*NotATensor.*"
                                        "save model.state_dict\\(\\) instead"):
        load_weights(Small(), tmp_path / "objects.pt")


def test_not_a_state_dict(tmp_path):
    torch.save(torch.zeros(3), tmp_path / "tensor.pt")
    with pytest.raises(UserError, match="holds a Tensor, expected a state dict"):
        load_weights(Small(), tmp_path / "tensor.pt")
    torch.save({"conv.weight": torch.zeros(1), "note": "hello"}, tmp_path / "mixed.pt")
    with pytest.raises(UserError, match="entries note are not tensors"):
        read_state_dict(tmp_path / "mixed.pt")


def test_mismatched_keys_name_missing_and_unexpected(tmp_path):
    state = _trained_copy().state_dict()
    state["extra.weight"] = torch.zeros(1)
    del state["head.weight"], state["head.bias"]
    save_file(state, str(tmp_path / "w.safetensors"))
    with pytest.raises(UserError) as info:
        load_weights(Small(), tmp_path / "w.safetensors", model_name="small")
    assert str(info.value) == (
        f"--weights {tmp_path / 'w.safetensors'}: keys do not match model 'small': "
        "2 missing (head.weight, head.bias); 1 unexpected (extra.weight); were these weights "
        "saved from another architecture or options?")


def test_many_missing_keys_are_abbreviated(tmp_path):
    save_file({"other": torch.zeros(1)}, str(tmp_path / "w.safetensors"))
    with pytest.raises(UserError, match=r"9 missing \(conv\.weight, conv\.bias, norm\.weight, "
                                        r"\.\.\. \(6 more\)\)"):
        load_weights(Small(), tmp_path / "w.safetensors")


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_shape_mismatch_names_the_first_key_and_both_shapes(tmp_path, suffix):
    path = save_weights(Small(in_channels=3, width=4), tmp_path / f"rgb{suffix}")
    with pytest.raises(UserError) as info:
        load_weights(Small(in_channels=1), path, model_name="small")
    assert str(info.value) == (
        f"--weights {path}: shape mismatch for 'conv.weight': (4, 3, 3, 3) in the file, "
        "(4, 1, 3, 3) in model 'small' (other width, number of classes or input channels?)")
