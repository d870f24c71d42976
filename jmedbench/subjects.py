"""``subjects.csv``: who each CT belongs to (subject, sex, age, site; only ``subject`` is
required), read by the ``nifti:`` loader and by ``jmedbench predict``."""

from __future__ import annotations

import csv
from pathlib import Path

from jmedbench.errors import UserError


def read_subjects_csv(path: str | Path) -> dict[str, dict]:
    """subject,sex,age,site rows (only ``subject`` required) -> per-subject metadata."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file" if not path.exists() else f"{path}: not a file")
    rows: dict[str, dict] = {}
    try:
        with open(path, newline="") as fh:
            reader = csv.DictReader(fh)
            fields = [f.strip().lower() for f in (reader.fieldnames or [])]
            if "subject" not in fields:
                raise UserError(f"{path}: needs a header line with a 'subject' column "
                                f"(and optional sex, age, site)")
            for line, raw in enumerate(reader, start=2):
                row = {k.strip().lower(): (v or "").strip() for k, v in raw.items() if k}
                meta: dict = {}
                sex = row.get("sex", "").upper()[:1]
                if sex:
                    if sex not in ("M", "F"):
                        raise UserError(f"{path} line {line}: sex '{row['sex']}' is not M or F")
                    meta["sex"] = sex
                if row.get("age"):
                    try:
                        meta["age"] = float(row["age"])
                    except ValueError:
                        raise UserError(f"{path} line {line}: age '{row['age']}' is not a "
                                        f"number") from None
                if row.get("site"):
                    meta["site"] = row["site"]
                rows[row["subject"]] = meta
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a text CSV file") from None
    return rows
