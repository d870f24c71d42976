"""Registry: lookups, wildcards, did-you-mean, duplicates, broken plugins, misspelled hooks."""

from __future__ import annotations

import types

import pytest

from jmedbench.errors import UnknownNameError, UserError
from jmedbench.hookspecs import hookimpl
from jmedbench.registry import Registry, suggest
from jmedbench.specs import ModelSpec


def _model_plugin(name: str, *model_names: str) -> types.SimpleNamespace:
    specs = [ModelSpec(n, lambda **kw: None, family="test", description="d", citation="c")
             for n in model_names]

    @hookimpl
    def jmedbench_models():
        return specs

    return types.SimpleNamespace(__name__=name, jmedbench_models=jmedbench_models)


def test_first_party_plugins_are_found_through_entry_points(registry):
    assert {"zoo", "strategies", "phantom", "metrics"} <= set(registry.plugins)
    assert "unet" in registry.names("models")
    assert "baseline" in registry.names("strategies")
    assert "phantom" in registry.names("datasets")
    assert {"dice", "iou"} <= set(registry.names("metrics"))


def test_wildcard_listing():
    reg = Registry()
    reg.register(_model_plugin("p", "unet", "unet-plus", "segnet"), "p")
    assert reg.names("models", "unet*") == ["unet", "unet-plus"]
    assert reg.names("models", "*net") == ["segnet", "unet"]
    assert reg.names("models", "nothing*") == []


def test_unknown_name_suggests_the_closest():
    reg = Registry()
    reg.register(_model_plugin("p", "unet", "segnet"), "p")
    with pytest.raises(UnknownNameError, match="did you mean unet"):
        reg.model("unte")
    with pytest.raises(UnknownNameError) as info:
        reg.model("completely-different")
    assert "available: segnet, unet" in str(info.value)


def test_suggest_is_case_insensitive():
    assert suggest("UNET", ["unet", "segnet"])[0] == "unet"
    assert suggest("zzzz", ["unet", "segnet"]) == []


def test_duplicate_name_names_both_plugins_and_keeps_others_working():
    reg = Registry()
    reg.register(_model_plugin("first", "unet", "segnet"), "first")
    reg.register(_model_plugin("second", "unet"), "second")
    assert any("'first' and 'second'" in p and "'unet'" in p for p in reg.problems)
    with pytest.raises(UserError, match="first, second"):
        reg.model("unet")
    assert reg.model("segnet").name == "segnet"


def test_misspelled_hook_is_caught_by_check_pending():
    reg = Registry()

    @hookimpl
    def jmedbench_modles():  # typo
        return []

    plugin = types.SimpleNamespace(__name__="typo", jmedbench_modles=jmedbench_modles)
    reg.register(plugin, "typo")
    assert reg.plugins["typo"].status == "failed"
    assert any("jmedbench_modles" in p for p in reg.problems)


def test_plugin_whose_hook_raises_is_reported_not_fatal():
    reg = Registry()

    @hookimpl
    def jmedbench_models():
        raise RuntimeError("boom")

    reg.register(types.SimpleNamespace(__name__="bad", jmedbench_models=jmedbench_models), "bad")
    reg.register(_model_plugin("good", "unet"), "good")
    assert reg.plugins["bad"].status == "failed"
    assert "boom" in reg.plugins["bad"].error
    assert reg.names("models") == ["unet"]


def test_wrong_spec_type_is_reported():
    reg = Registry()

    @hookimpl
    def jmedbench_models():
        return ["not a spec"]

    reg.register(types.SimpleNamespace(__name__="x", jmedbench_models=jmedbench_models), "x")
    assert any("expected ModelSpec" in p for p in reg.problems)


def test_plugin_that_fails_to_import_is_reported(monkeypatch):
    import importlib.metadata as md

    good = md.EntryPoint(name="zoo", value="jmedbench_zoo", group="jmedbench")
    broken = md.EntryPoint(name="broken", value="no_such_module_xyz", group="jmedbench")
    monkeypatch.setattr(md, "entry_points", lambda group: [broken, good])
    reg = Registry().load_entry_points()
    assert reg.plugins["broken"].status == "failed"
    assert "No module named 'no_such_module_xyz'" in reg.plugins["broken"].error
    assert "unet" in reg.names("models")


def test_model_backend_lookup():
    reg = Registry()
    reg.register(_model_plugin("p", "unet"), "p")
    with pytest.raises(UserError, match="no jittor backend"):
        reg.model("unet", backend="jittor")
