"""The sandbox targets (targets/sandbox.py) with Nagle's algorithm off, for the delivery and latency benches.

    .venv/bin/python bench/fast_sandbox.py PORT

The sandbox's handler writes the status line + headers and the body in separate
writes on a keep-alive connection; with Nagle on, each answer waits for the
client's delayed ACK (~40 ms on Linux), capping a keep-alive client near 25
requests/s. Same code and contract otherwise; credentials from the environment
as `manage.py run_sandbox_targets` reads them. BENCH_SANDBOX_NAGLE=1 keeps Nagle on.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "custsync_project.settings")

import django  # noqa: E402

django.setup()

from targets import sandbox as sandbox_module  # noqa: E402

if os.environ.get("BENCH_SANDBOX_NAGLE") != "1":
    sandbox_module._Handler.disable_nagle_algorithm = True

box = sandbox_module.Sandbox(
    credentials=sandbox_module.SandboxCredentials(
        cdp_token=os.environ.get("CDP_TOKEN"), crm_api_key=os.environ.get("CRM_API_KEY"),
        webhook_secret=os.environ.get("N8N_SECRET"),
    ),
    host="127.0.0.1", port=int(sys.argv[1]),
).start()
print(f"sandbox on {box.url}", flush=True)
try:
    for _ in range(24 * 3600):
        time.sleep(1)
finally:
    box.stop()
