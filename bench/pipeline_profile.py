"""Where one inbox pump spends its time, in one process: statements per event and database vs Python time.

    .venv/bin/python bench/pipeline_profile.py [--events N]

Not a benchmark (no ceiling): the drill-down behind bench/pipeline.py. On a
fresh database (custsync_bench_profile) with the dev sync config, N upserts
(for N * 2 / 5 customers, as bench/pipeline.py) are loaded into the inbox and
`inbox_pump()` runs in this process with every SQL statement timed by a
Django execute wrapper. Prints events/s, statements per event, the share of
wall time spent waiting for the database, and the statements by total time.
For a CPU profile of the Python side: `py-spy record -o out.svg -- <this command>`.
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1000)
    args = parser.parse_args()
    common.header("pipeline profile")
    env = common.project_setup("custsync_bench_profile")
    common.django_setup(env)
    from django.db import connection

    from webhooks import processing as pipeline

    common.inbox_preload(events=args.events, customers=args.events * 2 // 5)

    by_statement: dict[str, list] = collections.defaultdict(lambda: [0, 0.0])

    def timed(execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            entry = by_statement[sql[:70]]
            entry[0] += 1
            entry[1] += time.perf_counter() - started

    started = time.perf_counter()
    with connection.execute_wrapper(timed):
        totals = pipeline.inbox_pump(budget_seconds=600)
    wall = time.perf_counter() - started
    n = args.events
    db = sum(seconds for _, seconds in by_statement.values())
    statements = sum(count for count, _ in by_statement.values())
    print(f"{totals} {n} events in {wall:.2f} s = {n / wall:.0f}/s in one process; {wall / n * 1000:.1f} ms/event, "
          f"of which waiting for the database {db / n * 1000:.1f} ms ({statements / n:.1f} statements/event), "
          f"Python {(wall - db) / n * 1000:.1f} ms; load {common.loadavg()}")
    for sql, (count, seconds) in sorted(by_statement.items(), key=lambda kv: -kv[1][1])[:15]:
        print(f"  {count / n:5.2f}/event {seconds / count * 1000:6.2f} ms  {sql}")


if __name__ == "__main__":
    main()
