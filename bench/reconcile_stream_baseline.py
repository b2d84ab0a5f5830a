"""Baseline for bench/reconcile_scale.py: page through every listable target, compare nothing."""

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "custsync_project.settings")

import django  # noqa: E402

django.setup()

from targets.adapters import adapter_for  # noqa: E402
from targets.models import Target  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("--page-size", type=int, default=1000)
args = parser.parse_args()
for target in Target.objects.filter(enabled=True).order_by("name"):
    adapter = adapter_for(target)
    if not adapter.supports_listing:
        continue
    started, count = time.monotonic(), 0
    for _ in adapter.iter_records(page_size=args.page_size):
        count += 1
    print(f"{target.name}: {count} records in {time.monotonic() - started:.2f} s")
