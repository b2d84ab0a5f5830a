"""A worker process for tests: deliver one target's due messages for N seconds, print stats as JSON.

Run with DATABASE_URL pointing at the test database (see support.start_worker).
"""

import argparse
import json
import random
import time

import django


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--target-id", type=int, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    django.setup()
    from targets.services import outbox_deliver_due, worker_id

    stats = outbox_deliver_due(
        target_id=args.target_id, owner=worker_id(), deadline=time.monotonic() + args.seconds,
        wait_for_due=True, rng=random.Random(args.seed),
    )
    print(json.dumps(dict(stats)), flush=True)


if __name__ == "__main__":
    main()
