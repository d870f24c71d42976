"""``jmedbench predict RUN_ID CT... --out DIR``: a stored run's model on CT volumes: L1/L2
cortical/cancellous masks on each CT's own grid, the BMD of each, and a bmd.csv for
``jmedbench cohort``."""

from __future__ import annotations

from pathlib import Path

from rich import box
from rich.markup import escape
from rich.table import Table

from jmedbench.cli.common import (add_execution_options, add_json_option, add_store_option,
                                  console, err_console, print_json)
from jmedbench.cli.runs import existing_store_or_error
from jmedbench.engine.devices import resolve_execution
from jmedbench.engine.predict import check_inputs, check_output_folder, predict_cts
from jmedbench.engine.progress import RichReporter
from jmedbench.engine.trained import load_run_model
from jmedbench.errors import UserError
from jmedbench.registry import get_registry
from jmedbench.subjects import read_subjects_csv


def register(sub) -> None:
    p = sub.add_parser("predict", help="segment L1/L2 in CT volumes with a stored run's model "
                                       "and measure their BMD")
    p.add_argument("run_id", metavar="RUN_ID", help="a stored run (jmedbench runs); a unique "
                                                    "prefix is enough")
    p.add_argument("cts", nargs="+", type=Path, metavar="CT",
                   help="CT volumes: NIfTI files or DICOM series directories")
    p.add_argument("--out", required=True, type=Path, metavar="DIR",
                   help="output folder: <subject>/mask.nii.gz, bmd.json, density.png, and "
                        "bmd.csv over all CTs")
    p.add_argument("--vertebrae", action="append", type=Path, metavar="MAP",
                   help="vertebra label map on the CT's grid (VerSe or TotalSegmentator "
                        "labels), once per CT in the same order: locates L1/L2")
    p.add_argument("--slices", metavar="FIRST:LAST",
                   help="without a vertebra map: the axial slices through L1/L2 (0-based, "
                        "inclusive, counted from the inferior end), for every CT")
    p.add_argument("--subjects", type=Path, metavar="subjects.csv",
                   help="subject,sex,age,site per subject (a CT's subject is its file name "
                        "without .nii.gz, or its folder's for ct.nii.gz): fills bmd.csv")
    p.add_argument("--weights", type=Path, metavar="FILE",
                   help="another weights file of the run's model (default: the run's own)")
    p.add_argument("--overwrite", action="store_true",
                   help="write into a non-empty --out, replacing files of the same names")
    add_execution_options(p, compile_option=False)
    add_store_option(p)
    add_json_option(p)
    p.set_defaults(func=cmd_predict)


def cmd_predict(args) -> int:
    subjects = read_subjects_csv(args.subjects) if args.subjects else None
    inputs = check_inputs(args.cts, args.vertebrae, args.slices, subjects)
    missing = [ct.subject for ct in inputs if subjects is not None and ct.subject not in subjects]
    if missing:
        err_console.print(f"[yellow]warning:[/yellow] {args.subjects} has no row for subject(s) "
                          f"{', '.join(missing)}: their sex, age and site stay empty in bmd.csv",
                          highlight=False)
    check_output_folder(args.out, args.overwrite)
    store = existing_store_or_error(args.store)
    execution = resolve_execution(args.device or "auto", args.precision or "auto",
                                  args.channels_last or "auto")
    run_model = load_run_model(get_registry(), store, args.run_id, args.weights, execution)
    batch = int(((store.get_run(run_model.run_id)["config"] or {}).get("eval") or {})
                .get("batch_size", 16))
    reporter = RichReporter(err_console)
    try:
        result = predict_cts(run_model, inputs, args.out, batch_size=batch, reporter=reporter)
    finally:
        reporter.close()
    for failure in result.failures:
        err_console.print(f"[red]error:[/red] {escape(failure)}", highlight=False,
                          soft_wrap=True)
    if args.json:
        print_json({"run_id": run_model.run_id, "out": str(args.out),
                    "bmd_csv": str(result.csv_path), "cts": result.rows,
                    "failures": result.failures})
    else:
        table = Table(title=f"BMD by run {run_model.run_id} ({run_model.model_name})",
                      box=box.SIMPLE_HEAD)
        for column in ("subject", "slices", "BMD", "SE", "pixels", "checks"):
            table.add_column(column, justify="left" if column in ("subject", "checks")
                             else "right")
        for row in result.rows:
            checks = row["warnings"] or "ok"
            table.add_row(row["subject"], row["slices"], f"{row['bmd']:.1f} {row['unit']}",
                          f"{row['mode_se']:.2f}", str(row["n_pixels"]),
                          checks if len(checks) < 70 else checks[:67] + "...")
        console.print(table)
        console.print(f"{len(result.rows)} of {len(inputs)} CT(s) measured; masks and reports "
                      f"in {args.out}/<subject>/; {result.csv_path} is ready for jmedbench "
                      f"cohort", highlight=False)
    return UserError.exit_code if result.failures else 0
