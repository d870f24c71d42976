"""Config: profiles, files and CLI overrides merge in order; every mistake is one clear line."""

from __future__ import annotations

import pytest

from jmedbench.config import available_profiles, build_config
from jmedbench.errors import UnknownNameError, UserError


def test_profiles_exist_and_order_of_precedence(tmp_path):
    assert {"quick", "default", "leaderboard", "full"} <= set(available_profiles())
    f = tmp_path / "run.toml"
    f.write_text("[train]\nsteps = 7\nlr = 1e-3\n[model]\nwidth = 4\n[model.unet]\nwidth = 12\n")
    cfg = build_config("quick", f, {"train.steps": 3})
    assert cfg.train.steps == 3          # CLI beats file
    assert cfg.train.lr == 1e-3          # file beats profile
    assert cfg.data.image_size == 64     # from the quick profile
    assert cfg.model_kwargs("unet") == {"width": 12}
    assert cfg.model_kwargs("segnet") == {"width": 4}


@pytest.mark.parametrize("profile", available_profiles())
def test_every_shipped_profile_is_valid_and_keeps_the_phantom_views_alike(profile):
    """Every key of every shipped profile is known and typed right; the two phantom views
    (site N and the cross-site S) get the same split sizes, so their scores compare."""
    from jmedbench.config import load_profile

    cfg = build_config(profile)
    assert cfg.train.steps >= 1 and cfg.data.image_size % 16 == 0
    tables = load_profile(profile)["data"]
    assert tables.get("phantom") == tables.get("phantom-s")


def test_unknown_profile_suggests():
    with pytest.raises(UnknownNameError, match="did you mean quick"):
        build_config("quik")


@pytest.mark.parametrize("text, message", [
    ("[train]\nstpes = 3\n", "unknown key 'stpes' (did you mean 'steps'?)"),
    ("[trian]\nsteps = 3\n", "unknown key 'trian' (did you mean 'train'?)"),
    ("[train]\nsteps = 'many'\n", "key 'steps' must be int"),
    ("[run]\nmodle = 'unet'\n", "unknown key 'modle' (did you mean 'model'?)"),
    ("[train\nsteps = 3\n", "not valid TOML"),
])
def test_bad_config_file_is_one_line_naming_the_file(tmp_path, text, message):
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(UserError) as info:
        build_config("quick", f)
    assert message in str(info.value)
    assert str(f) in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_config_file(tmp_path):
    with pytest.raises(UserError, match="not found"):
        build_config("quick", tmp_path / "nope.toml")


def test_image_size_must_fit_the_models():
    with pytest.raises(UserError, match="multiple of 16"):
        build_config("quick", overrides={"data.image_size": 50})


@pytest.mark.parametrize("key, value, message", [
    ("lr_schedule", "cosin",
     "train.lr_schedule 'cosin': expected constant or cosine (did you mean cosine?)"),
    ("lr_schedule", "linear", "train.lr_schedule 'linear': expected constant or cosine"),
    ("class_weighting", "nnone", "train.class_weighting 'nnone': expected median-frequency or "
                                 "none (did you mean none?)"),
    ("class_weighting", "inverse",
     "train.class_weighting 'inverse': expected median-frequency or none")])
def test_an_unknown_training_choice_is_one_line_with_the_choices(tmp_path, key, value, message):
    path = tmp_path / "c.toml"
    path.write_text(f'[train]\n{key} = "{value}"\n')
    with pytest.raises(UserError) as err:
        build_config("quick", config_file=path)
    assert str(err.value) == message


@pytest.mark.parametrize("value", ["-0.1", "1.5"])
def test_average_last_outside_zero_to_one_is_one_line(tmp_path, value):
    path = tmp_path / "c.toml"
    path.write_text(f"[train]\naverage_last = {value}\n")
    with pytest.raises(UserError) as err:
        build_config("quick", config_file=path)
    assert str(err.value) == (f"train.average_last {float(value)}: must be a fraction of the "
                              "steps, from 0 (off) to 1")
