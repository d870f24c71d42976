"""Claim overhead per matrix entry: the store round trips a bench worker adds to each entry
(claim, one lease renewal, settling the claim), median over N entries claimed one after another
in one process, on a fresh store: a new SQLite file, or a new schema on a PostgreSQL server.

    python benchmarks/bench_claims.py [--entries 200] [--postgres postgresql://user:pw@host/db]

Prints the median and 90th percentile of each step and of their sum, in milliseconds.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy as sa
from rich.console import Console
from rich.table import Table

from jmedbench.claims import Claims
from jmedbench.store import Store


def measure(location: str, entries: int) -> dict[str, list[float]]:
    claims = Claims(Store(location), lease=60)
    keys = [f"model{i}|baseline|phantom|0|default|torch|-|" for i in range(entries)]
    claims.register([(k, k) for k in keys])
    times: dict[str, list[float]] = {"claim": [], "heartbeat": [], "complete": []}
    for _ in keys:
        t0 = time.perf_counter()
        claim = claims.claim(keys)
        t1 = time.perf_counter()
        claims.heartbeat([claim.token])
        t2 = time.perf_counter()
        claims.finish(claim.token, "completed")
        t3 = time.perf_counter()
        for name, seconds in zip(times, (t1 - t0, t2 - t1, t3 - t2)):
            times[name].append(seconds * 1000)
    times["per entry"] = [a + b + c for a, b, c in zip(*(times[k] for k in list(times)))]
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=200)
    parser.add_argument("--postgres", help="a PostgreSQL server URL (a schema is made, then "
                                           "dropped)")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        results["SQLite"] = measure(str(Path(tmp) / "claims.sqlite"), args.entries)
    if args.postgres:
        schema = f"bench_{uuid.uuid4().hex[:8]}"
        admin = sa.create_engine(args.postgres.replace("postgresql://", "postgresql+psycopg://"))
        with admin.begin() as c:
            c.execute(sa.text(f"CREATE SCHEMA {schema}"))
        try:
            sep = "&" if "?" in args.postgres else "?"
            results["PostgreSQL"] = measure(f"{args.postgres}{sep}options=-csearch_path%3D"
                                            f"{schema}", args.entries)
        finally:
            with admin.begin() as c:
                c.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
    table = Table(title=f"claim overhead, ms, {args.entries} entries (median / p90)")
    table.add_column("store")
    for step in ("claim", "heartbeat", "complete", "per entry"):
        table.add_column(step, justify="right")
    for name, times in results.items():
        table.add_row(name, *[f"{statistics.median(v):.2f} / "
                              f"{statistics.quantiles(v, n=10)[-1]:.2f}" for v in times.values()])
    Console().print(table)


if __name__ == "__main__":
    main()
