"""``jmedbench profile --model NAME|PATTERN``: what models cost on this machine (parameters,
GFLOPs, latency, training throughput, training memory); see :mod:`jmedbench.engine.profiling` for
exactly what each number measures."""

from __future__ import annotations

from rich.table import Table

from jmedbench.cli.common import (add_execution_options, add_json_option, add_store_option,
                                  console, err_console, print_json)
from jmedbench.engine.backends import get_backend
from jmedbench.engine.devices import resolve_execution
from jmedbench.errors import UserError
from jmedbench.engine.profiling import (DEFAULT_BATCH, DEFAULT_SIZE, profile_model, select_models,
                                 store_profile)
from jmedbench.registry import get_registry
from jmedbench.weights import add_weights_option


def register(sub) -> None:
    p = sub.add_parser("profile", help="parameters, GFLOPs, latency, training speed and memory "
                                       "of models on this machine")
    p.add_argument("--model", required=True, metavar="NAME|PATTERN",
                   help="a model name or a shell-style wildcard such as 'unet*' or '*'")
    p.add_argument("--size", type=int, default=DEFAULT_SIZE,
                   help=f"input side length in pixels (default {DEFAULT_SIZE})")
    p.add_argument("--batch", type=int, default=DEFAULT_BATCH,
                   help=f"batch size of the training step (default {DEFAULT_BATCH})")
    p.add_argument("--backend", default="torch", help="model backend (default torch)")
    add_execution_options(p, compile_option=False)
    p.add_argument("--repeats", type=int, default=5,
                   help="timed repeats after 2 warm-up runs; the median is reported (default 5)")
    p.add_argument("--threads", type=int,
                   help="torch intra-op threads (default: torch's own choice); recorded")
    add_weights_option(p)
    p.add_argument("--save", action="store_true",
                   help="also store each profile in the results store (kind 'profile')")
    add_store_option(p)
    add_json_option(p)
    p.set_defaults(func=cmd_profile)


def cmd_profile(args) -> int:
    import torch

    if args.repeats < 1:
        raise UserError(f"--repeats {args.repeats}: must be at least 1")
    if args.threads is not None:
        if args.threads < 1:
            raise UserError(f"--threads {args.threads}: must be at least 1")
        torch.set_num_threads(args.threads)
    if args.size < 1:
        raise UserError(f"--size {args.size}: must be a positive number of pixels")
    registry = get_registry()
    backend = get_backend(registry, args.backend)
    execution = resolve_execution(args.device or "auto", args.precision or "auto",
                                  args.channels_last or "auto", backend=backend.name,
                                  backend_devices=backend.devices,
                                  backend_precisions=backend.precisions)
    specs = select_models(registry, args.model, args.backend)
    if args.weights and len(specs) > 1:
        raise UserError(f"--weights: give one model, not a pattern ('{args.model}' matches "
                        f"{len(specs)} models)")
    if len(specs) > 1:  # a pattern: skip models that cannot take the size, say so
        fitting = [s for s in specs if s.side_problem(args.size) is None]
        for spec in specs:
            if spec not in fitting:
                err_console.print(f"[yellow]skipped:[/yellow] {spec.name}: --size {args.size} "
                                  f"{spec.side_problem(args.size)}", highlight=False)
        if not fitting:
            raise UserError(f"--size {args.size}: none of the {len(specs)} models matching "
                            f"'{args.model}' takes this size")
        specs = fitting
    store = None
    if args.save:
        from jmedbench.store import Store
        store = Store(args.store)
    rows = []
    with err_console.status("") as status:
        for i, spec in enumerate(specs, 1):
            status.update(f"profiling {spec.name} ({i}/{len(specs)}) at {args.size}px, "
                          f"batch {args.batch}")
            row = profile_model(registry, spec.name, size=args.size, batch=args.batch,
                                backend=args.backend, weights=args.weights,
                                repeats=args.repeats, execution=execution)
            if store is not None:
                row["run_id"] = store_profile(store, row, registry)
            rows.append(row)
    if args.json:
        print_json(rows)
        return 0
    threads = rows[0]["threads"] if rows else torch.get_num_threads()
    layout = ", channels_last" if execution.channels_last else ""
    table = Table(title=f"{len(rows)} model profile(s): {args.size}x{args.size}, training batch "
                        f"{args.batch}, {execution.device} {execution.precision}{layout} "
                        f"({execution.accelerator}), {threads} thread(s)")
    for column in ("model", "family", "params (M)", "GFLOPs", "forward ms", "train step ms",
                   "train img/s", "train peak MiB"):
        table.add_column(column, justify="left" if column in ("model", "family") else "right")
    for row in rows:
        peak = row["train_peak_mib"]
        table.add_row(row["model"], row["family"], f"{row['params'] / 1e6:.3f}",
                      f"{row['gflops']:.3f}", f"{row['forward_ms']:.1f}",
                      f"{row['train_step_ms']:.1f}", f"{row['train_images_per_s']:.2f}",
                      "-" if peak is None else f"{peak:.1f}")
    console.print(table)
    if any("train_step_ratio" in row for row in rows):
        _print_ratios(rows, args.backend)
    console.print("GFLOPs: forward at batch 1, a multiply-add counts 2 (torch.utils.flop_counter); "
                  "forward ms: batch 1, eval; train: Adam step with Dice + CE at the batch; "
                  "peak: tensor memory of one training step (torch.profiler). Medians of "
                  f"{args.repeats} after 2 warm-up runs.", highlight=False, style="dim")
    if store is not None:
        console.print(f"stored {len(rows)} profile(s) in {store.path}", highlight=False)
    return 0


def _print_ratios(rows: list[dict], backend: str) -> None:
    """A backend other than torch measures its torch twin in the same run: times and ratios."""
    table = Table(title=f"{backend} against torch, measured in the same run, alternating "
                        f"(ratio = {backend} time / torch time)")
    for column in ("model", "torch fwd ms", f"{backend} fwd ms", "fwd ratio", "torch step ms",
                   f"{backend} step ms", "step ratio"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for row in rows:
        table.add_row(row["model"], f"{row['torch_forward_ms']:.1f}", f"{row['forward_ms']:.1f}",
                      f"{row['forward_ratio']:.2f}", f"{row['torch_train_step_ms']:.1f}",
                      f"{row['train_step_ms']:.1f}", f"{row['train_step_ratio']:.2f}")
    console.print(table)
