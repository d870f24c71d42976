"""Typed run configuration: defaults <- profile (``<profile>.toml``, found as below) <- a
user's ``--config FILE.toml`` <- command-line options. Every key is checked; a misspelled key is
one clear error naming the file and the closest valid key.

Profiles are looked up by name in this order, the first file found wins:

1. each directory in ``$JMEDBENCH_CONFIGS`` (several separated by ``os.pathsep``);
2. ``configs/`` in the current directory;
3. ``configs/`` of the source checkout this package runs from (the repository's recipes:
   ``full``, ``leaderboard``); absent in a wheel install;
4. the built-in profiles shipped inside the package (``jmedbench/configs/``: ``default`` and
   ``quick``, what an installed jmedbench and the conformance kit need).

The code names no model, strategy or dataset: ``[run]`` of the profile does.

File layout (all tables optional)::

    [run]       model, strategy, dataset, seed, backend, device (auto | cpu | cuda | cuda:N |
                mps), precision (auto | fp32 | bf16 | fp16): see jmedbench.engine.devices
    [data]      image_size; [data.<dataset>] options for one dataset (e.g. [data.phantom])
    [model]     options passed to every model factory that accepts them (e.g. width);
                [model.<name>] options for one model
    [strategy]  options for the strategy parts (e.g. ssl_iterations)
    [train]     steps, batch_size, lr, lr_schedule (constant | cosine), average_last, weight_decay,
                class_weighting (median-frequency | none), channels_last (auto | on | off),
                compile (torch.compile the training forward pass)
    [eval]      batch_size, robustness (corruption families), severities, datasets (scored
                after training besides the run's own test and shift splits)
"""

from __future__ import annotations

import copy
import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jmedbench.errors import UnknownNameError, UserError
from jmedbench.registry import suggest

BUILTIN_PROFILES = Path(__file__).parent / "configs"
CHECKOUT_PROFILES = Path(__file__).resolve().parent.parent / "configs"
PROFILES_ENV = "JMEDBENCH_CONFIGS"
LR_SCHEDULES = ("constant", "cosine")  # jmedbench.engine.train.learning_rate
CLASS_WEIGHTINGS = ("median-frequency", "none")  # jmedbench.engine.train.class_weights


@dataclass
class DataConfig:
    image_size: int = 128
    options: dict[str, dict[str, Any]] = field(default_factory=dict)  # per dataset name


@dataclass
class TrainConfig:
    steps: int = 1500
    batch_size: int = 4
    lr: float = 3e-4
    lr_schedule: str = "constant"  # constant | cosine (decay to 0 over the steps)
    average_last: float = 0.0    # fraction of the steps whose weights are averaged (SWA); 0: off
    weight_decay: float = 0.0
    class_weighting: str = "median-frequency"  # median-frequency | none (cross-entropy weights)
    channels_last: str = "auto"  # auto | on | off: NHWC memory layout (jmedbench.engine.devices)
    compile: bool = False        # torch.compile the model for the training steps


@dataclass
class EvalConfig:
    batch_size: int = 16
    robustness: list[str] = field(default_factory=list)  # corruption families or names
    severities: list[int] = field(default_factory=lambda: [1, 2, 3, 4, 5])
    robustness_subjects: int = 0  # 0 = every test subject
    # other datasets scored after training (transfer: another scanner, the user's own scans);
    # their metrics are prefixed with eval_dataset_key(name)
    datasets: list[str] = field(default_factory=list)


@dataclass
class RunConfig:
    model: str = ""      # every name comes from the profile's [run] table or the command line
    strategy: str = ""
    dataset: str = ""
    profile: str = "default"
    seed: int = 0
    backend: str = "torch"
    device: str = "auto"     # auto | cpu | cuda | cuda:N | mps
    precision: str = "auto"  # auto | fp32 | bf16 | fp16 (autocast; see jmedbench.engine.devices)
    weights: str | None = None  # initial parameters (.safetensors / .pt), see jmedbench.weights
    data: DataConfig = field(default_factory=DataConfig)
    model_options: dict[str, Any] = field(default_factory=dict)
    strategy_options: dict[str, Any] = field(default_factory=dict)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def model_kwargs(self, name: str) -> dict[str, Any]:
        """Options for one model: the generic [model] keys, then its own [model.<name>] table."""
        generic = {k: v for k, v in self.model_options.items() if not isinstance(v, dict)}
        own = self.model_options.get(name, {})
        return {**generic, **(own if isinstance(own, dict) else {})}

    def dataset_options(self, name: str) -> dict[str, Any]:
        return dict(self.data.options.get(name.split(":", 1)[0], {}))


RUN_KEYS = {"model": str, "strategy": str, "dataset": str, "seed": int, "backend": str,
            "device": str, "precision": str, "weights": str}
SECTION_TYPES = {"data": DataConfig, "train": TrainConfig, "eval": EvalConfig}


def profile_dirs() -> list[Path]:
    """Where profiles are looked up, in order (see the module docstring)."""
    listed = [Path(p) for p in os.environ.get(PROFILES_ENV, "").split(os.pathsep) if p]
    return listed + [Path.cwd() / "configs", CHECKOUT_PROFILES, BUILTIN_PROFILES]


def profile_path(name: str) -> Path | None:
    """The file profile ``name`` is read from, or None."""
    return next((d / f"{name}.toml" for d in profile_dirs() if (d / f"{name}.toml").is_file()),
                None)


def available_profiles() -> list[str]:
    return sorted({p.stem for d in profile_dirs() if d.is_dir() for p in d.glob("*.toml")})


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise UserError(f"config file {path}: not found") from None
    except IsADirectoryError:
        raise UserError(f"config file {path}: is a directory, expected a .toml file") from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"config file {path}: not valid TOML ({exc})") from None


def _check_type(where: str, key: str, value: Any, expected: type) -> Any:
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected is list and isinstance(value, list):
        return value
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        raise UserError(f"{where}: key '{key}' must be {expected.__name__}, got {value!r}")
    return value


def _unknown_key(where: str, key: str, valid: list[str]) -> UserError:
    hints = suggest(key, valid)
    hint = f" (did you mean '{hints[0]}'?)" if hints else f" (valid: {', '.join(sorted(valid))})"
    return UserError(f"{where}: unknown key '{key}'{hint}")


def apply_mapping(cfg: RunConfig, data: dict[str, Any], where: str) -> RunConfig:
    """Merge one parsed TOML document into ``cfg``, checking every key and type."""
    cfg = copy.deepcopy(cfg)
    valid_tables = ["run", "data", "model", "strategy", "train", "eval"]
    for table, body in data.items():
        if table not in valid_tables:
            raise _unknown_key(where, table, valid_tables)
        if not isinstance(body, dict):
            raise UserError(f"{where}: '{table}' must be a table ([{table}])")
        if table == "run":
            for key, value in body.items():
                if key not in RUN_KEYS:
                    raise _unknown_key(f"{where} [run]", key, list(RUN_KEYS))
                setattr(cfg, key, _check_type(f"{where} [run]", key, value, RUN_KEYS[key]))
        elif table == "model":
            for key, value in body.items():
                if isinstance(value, dict):
                    cfg.model_options.setdefault(key, {}).update(value)
                else:
                    cfg.model_options[key] = value
        elif table == "strategy":
            cfg.strategy_options.update(body)
        else:
            section = getattr(cfg, table)
            fields = {f.name: f for f in dataclasses.fields(section)}
            for key, value in body.items():
                if table == "data" and isinstance(value, dict):
                    section.options.setdefault(key, {}).update(value)
                    continue
                if key not in fields or key == "options":
                    raise _unknown_key(f"{where} [{table}]", key,
                                       [f for f in fields if f != "options"])
                expected = type(getattr(section, key))
                setattr(section, key, _check_type(f"{where} [{table}]", key, value, expected))
    return cfg


def load_profile(name: str) -> dict[str, Any]:
    path = profile_path(name)
    if path is None:
        profiles = available_profiles()
        raise UnknownNameError("profile", name, suggest(name, profiles), profiles)
    return read_toml(path)


def _check_choice(key: str, value: str, choices: tuple[str, ...]) -> None:
    """One line naming the key, the value and the choices (and the closest one) if ``value``
    is not one of ``choices``."""
    if value not in choices:
        hint = suggest(value, choices, n=1)
        raise UserError(f"{key} {value!r}: expected {' or '.join(choices)}"
                        + (f" (did you mean {hint[0]}?)" if hint else ""))


def build_config(profile: str = "default", config_file: str | Path | None = None,
                 overrides: dict[str, Any] | None = None) -> RunConfig:
    """The run configuration from a profile, an optional TOML file and CLI overrides.

    ``overrides`` uses dotted keys: ``{"model": "unet", "train.steps": 100}``.
    """
    cfg = RunConfig(profile=profile)
    cfg = apply_mapping(cfg, load_profile(profile), f"profile {profile}")
    if config_file is not None:
        path = Path(config_file)
        cfg = apply_mapping(cfg, read_toml(path), f"config file {path}")
    nested: dict[str, dict[str, Any]] = {}
    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        table, _, key = dotted.rpartition(".")
        nested.setdefault(table or "run", {})[key] = value
    if nested:
        cfg = apply_mapping(cfg, nested, "command line")
    if cfg.train.steps < 1 or cfg.train.batch_size < 1:
        raise UserError("train.steps and train.batch_size must be at least 1")
    _check_choice("train.lr_schedule", cfg.train.lr_schedule, LR_SCHEDULES)
    _check_choice("train.class_weighting", cfg.train.class_weighting, CLASS_WEIGHTINGS)
    if not 0.0 <= cfg.train.average_last <= 1.0:
        raise UserError(f"train.average_last {cfg.train.average_last}: must be a fraction of the "
                        "steps, from 0 (off) to 1")
    if cfg.data.image_size < 32 or cfg.data.image_size % 16:
        raise UserError(f"data.image_size {cfg.data.image_size}: must be a multiple of 16, >= 32")
    return cfg
