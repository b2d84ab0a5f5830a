"""Write the admin screenshots into docs/screenshots/ (dashboard, conflict, reconciliation report, customer).

Usage: .venv/bin/python tests/browser/screenshots.py   (needs chromium and chromium-driver)
"""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

if __name__ == "__main__":
    env = dict(os.environ, CUSTSYNC_SCREENSHOTS_DIR=str(ROOT / "docs" / "screenshots"))
    env.setdefault("TEST_DATABASE_NAME", "/tmp/custsync-screenshots.sqlite3")
    sys.exit(subprocess.call([sys.executable, "-m", "pytest", "-q", "-p", "no:randomly",
                              "tests/browser/test_screenshots.py"], cwd=ROOT, env=env))
