"""Shared CLI pieces: consoles, JSON output, the store option."""

from __future__ import annotations

import json
import math
import sys
from typing import Any

from rich.console import Console

from jmedbench.errors import UserError
from jmedbench.store import clean_nan

console = Console()
err_console = Console(stderr=True)


def print_json(value: Any) -> None:
    """Machine output on stdout: strict JSON (NaN -> null), nothing else on stdout."""
    sys.stdout.write(json.dumps(clean_nan(value), indent=2, default=str) + "\n")


def add_store_option(parser) -> None:
    parser.add_argument("--store", metavar="PATH|URL",
                        help="results store: an SQLite file, sqlite:///PATH or "
                             "postgresql://user:password@host:5432/db; default "
                             "$JMEDBENCH_STORE or ~/.local/share/jmedbench/results.sqlite")


def add_execution_options(parser, *, compile_option: bool = True) -> None:
    """--device, --precision, --channels-last (and --compile): jmedbench.engine.devices."""
    parser.add_argument("--device", help="auto (default: the first CUDA GPU, else MPS, else "
                        "the CPU) | cpu | cuda | cuda:N | mps")
    parser.add_argument("--precision", help="auto (default: bf16 on CUDA and on CPUs with "
                        "native bf16, else fp32) | fp32 | bf16 | fp16 (CUDA)")
    parser.add_argument("--channels-last", choices=("auto", "on", "off"),
                        help="NHWC memory layout (default auto: on CUDA, and with bf16 on "
                             "the CPU)")
    if compile_option:
        parser.add_argument("--compile", action="store_const", const=True, default=None,
                            help="torch.compile the model for the training steps")


def execution_overrides(args) -> dict:
    """The config overrides of :func:`add_execution_options` (None = keep the profile's)."""
    return {"device": args.device, "precision": args.precision,
            "train.channels_last": args.channels_last,
            "train.compile": getattr(args, "compile", None)}


def add_json_option(parser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable output on stdout")


def fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return f"{value:.{digits}f}" if abs(value) < 1e4 else f"{value:.4g}"
    return str(value)


def comma_list(text: str | None, option: str) -> list[str] | None:
    """``a,b`` -> ["a", "b"]; None stays None (the option was not given). An empty item
    (``a,,b``, a trailing comma) is a user error naming the option."""
    if text is None:
        return None
    items = [item.strip() for item in text.split(",")]
    if not all(items):
        raise UserError(f"{option} {text!r}: an empty name in the comma-separated list")
    return items
