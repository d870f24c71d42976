"""Profile every registered model and write docs/model-profiles.md (a generated file: rerun this
script instead of editing it).

    python benchmarks/profile_table.py                      # all models, 128 px, batch 4
    python benchmarks/profile_table.py --pattern 'unet*' --output /tmp/unets.md --json /tmp/u.json
    python benchmarks/profile_table.py --from-json docs/model-profiles.json   # re-render only

One torch thread per measurement (set below and written in the header) so that numbers from a
loaded, shared machine are at least comparable between models; the load average at the start
and the end is written too. Each model is measured in this one process, one after another.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import sys
import time
import traceback
from pathlib import Path

import torch

from jmedbench import provenance
from jmedbench.engine.profiling import profile_model
from jmedbench.registry import get_registry

REPO = Path(__file__).resolve().parent.parent
THREADS = 1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--repeats", type=int, default=3, help="timed repeats (median reported)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--pattern", default="*", help="which models (shell-style wildcard)")
    p.add_argument("--output", type=Path, default=REPO / "docs" / "model-profiles.md")
    p.add_argument("--json", type=Path, default=REPO / "docs" / "model-profiles.json",
                   help="where the raw rows go as JSON (default docs/model-profiles.json)")
    p.add_argument("--from-json", type=Path, metavar="JSON",
                   help="measure nothing: render the Markdown from rows an earlier run wrote "
                        "with --json")
    return p.parse_args(argv)


OUTPUT_ONLY = ("--output", "--json", "--from-json")  # options that do not change a number


def measuring_command(argv: list[str]) -> str:
    """The command line as it matters for the numbers: output-only options dropped."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in OUTPUT_ONLY:
            skip = True
            continue
        if arg.split("=", 1)[0] in OUTPUT_ONLY:
            continue
        kept.append(arg)
    return "python benchmarks/profile_table.py" + "".join(f" {shlex.quote(a)}" for a in kept)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.from_json:
        saved = json.loads(args.from_json.read_text())
        info = saved["info"]
        for key in ("size", "batch", "repeats", "warmup"):  # as measured, not as given now
            setattr(args, key, info.get(key, getattr(args, key)))
        args.output.write_text(render(saved["rows"], [tuple(f) for f in saved["failures"]],
                                      info, args))
        print(f"wrote {args.output} from {args.from_json}", file=sys.stderr)
        return 0
    torch.set_num_threads(THREADS)
    registry = get_registry()
    specs = [s for s in registry.specs("models", args.pattern) if s.backend == "torch"]
    load_start = os.getloadavg()
    started = time.time()
    rows, failures = [], []
    for i, spec in enumerate(specs, 1):
        problem = spec.side_problem(args.size)
        if problem:
            failures.append((spec.name, f"--size {args.size} {problem}"))
            continue
        print(f"[{i}/{len(specs)}] {spec.name} ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        try:
            rows.append(profile_model(registry, spec.name, size=args.size, batch=args.batch,
                                      repeats=args.repeats, warmup=args.warmup))
        except Exception as exc:  # one broken model must not cost the others their row
            traceback.print_exc()
            failures.append((spec.name, f"{type(exc).__name__}: {str(exc).splitlines()[0]}"))
        print(f"    {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    load_end = os.getloadavg()
    info = {
        "command": measuring_command(argv if argv is not None else sys.argv[1:]),
        "size": args.size, "batch": args.batch, "repeats": args.repeats,
        "warmup": args.warmup,
        "date": datetime.datetime.fromtimestamp(started, datetime.UTC).strftime(
            "%Y-%m-%d %H:%M UTC"),
        "minutes": (time.time() - started) / 60,
        "cpu": provenance.cpu_name(), "cores": os.cpu_count(), "threads": THREADS,
        "load_start": load_start, "load_end": load_end,
        "torch": torch.__version__, "python": platform.python_version(),
        "commit": provenance.git_commit(),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(render(rows, failures, info, args))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"info": info, "rows": rows, "failures": failures},
                                        indent=2, default=str))
    print(f"wrote {args.output} ({len(rows)} models, {len(failures)} not profiled)",
          file=sys.stderr)
    return 0


def render(rows: list[dict], failures: list[tuple[str, str]], info: dict,
           args: argparse.Namespace) -> str:
    load = lambda l: ", ".join(f"{v:.1f}" for v in l)  # noqa: E731
    out = [
        "# Model profiles",
        "",
        "<!-- Generated by benchmarks/profile_table.py: do not edit, rerun it. -->",
        "",
        f"Every registered model at {args.size}x{args.size} pixels, training batch "
        f"{args.batch}, with its default options, measured by:",
        "",
        "```bash",
        measuring_command(shlex.split(info["command"])[2:]),
        "```",
        "",
        f"- Machine: {info['cpu']}, {info['cores']} cores, **{info['threads']} torch thread** "
        f"per measurement; torch {info['torch']}, Python {info['python']}, "
        f"jmedbench commit `{info['commit']}`.",
        f"- Measured {info['date']} over {info['minutes']:.0f} minutes on a machine shared with "
        f"other jobs (load average {load(info['load_start'])} at the start, "
        f"{load(info['load_end'])} at the end): the times are inflated by that load and "
        f"comparable between rows only roughly. Parameters, GFLOPs and memory do not depend on "
        f"the load.",
        f"- Times are medians of {args.repeats} runs after {args.warmup} warm-up run(s).",
        "",
        "| model | family | params (M) | GFLOPs | forward ms | train step ms | train img/s "
        "| train peak MiB |",
        "|---|---|--:|--:|--:|--:|--:|--:|",
    ]
    for r in sorted(rows, key=lambda r: (r["family"], r["model"])):
        peak = "n/a" if r["train_peak_mib"] is None else f"{r['train_peak_mib']:.0f}"
        out.append(f"| {r['model']} | {r['family']} | {r['params'] / 1e6:.2f} | "
                   f"{r['gflops']:.2f} | {r['forward_ms']:.0f} | {r['train_step_ms']:.0f} | "
                   f"{r['train_images_per_s']:.2f} | {peak} |")
    if failures:
        out += ["", "Not profiled:", ""]
        out += [f"- `{name}`: {why}" for name, why in failures]
    out += [
        "",
        "What the columns measure (see `jmedbench/engine/profiling.py`):",
        "",
        "- **params**: trainable parameters, in millions.",
        "- **GFLOPs**: floating-point operations of one forward pass at batch 1, as "
        "`torch.utils.flop_counter.FlopCounterMode` counts them (convolutions, matrix products, "
        "attention; a multiply-add counts 2; element-wise ops, normalisation and interpolation "
        "are not counted).",
        "- **forward ms**: eval-mode forward at batch 1 without autograd.",
        f"- **train step ms** / **train img/s**: one Adam step with Dice + cross-entropy at "
        f"batch {args.batch} (forward, backward, update); images per second = batch / step time.",
        "- **train peak MiB**: peak tensor memory allocated during one training step "
        "(activations, gradients, temporaries), from `torch.profiler` allocation events; "
        "weights and Adam state that exist before the step are not included.",
        "",
        "Profile one model yourself: `jmedbench profile --model NAME --size 128 --batch 4 "
        "--threads 1` (add `--json` for machine output, `--save` to store it with results).",
        "",
    ]
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
