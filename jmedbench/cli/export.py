"""``jmedbench export RUN_ID --onnx FILE``: a stored run's model as ONNX, checked with
onnxruntime against torch on the run's test images."""

from __future__ import annotations

from pathlib import Path

from jmedbench.cli.common import add_json_option, add_store_option, console, print_json


def register(sub) -> None:
    p = sub.add_parser("export", help="write a stored run's model as ONNX, checked with "
                                      "onnxruntime against torch")
    p.add_argument("run_id", metavar="RUN_ID")
    p.add_argument("--onnx", required=True, type=Path, metavar="FILE",
                   help="output .onnx file (input 'image' (N, 1, H, W) = HU clipped to "
                        "-250..1250, / 1000; output 'logits' (N, 3, H, W))")
    p.add_argument("--overwrite", action="store_true", help="replace an existing FILE")
    p.add_argument("--images", type=int, default=8, metavar="N",
                   help="test images the check compares on (default 8)")
    add_store_option(p)
    add_json_option(p)
    p.set_defaults(func=cmd_export)


def cmd_export(args) -> int:
    from jmedbench.engine.export import export_onnx
    from jmedbench.registry import get_registry
    from jmedbench.cli.runs import existing_store_or_error

    result = export_onnx(get_registry(), existing_store_or_error(args.store), args.run_id,
                         args.onnx, overwrite=args.overwrite, n_images=args.images)
    if args.json:
        print_json(result.to_dict())
    else:
        console.print(f"wrote {result.path} (run {result.run_id}, {result.model}, opset "
                      f"{result.opset}); onnxruntime against torch on {result.n_images} test "
                      f"image(s) of {result.image_size}x{result.image_size}: max |difference| "
                      f"of logits {result.max_difference:.3g} (tolerance {result.tolerance:g})"
                      f"{'' if result.ok else ': TOO LARGE'}", highlight=False)
    return 0 if result.ok else 1
