"""Settings for the chaos suite's worker processes: production settings with shorter inbox timings.

The inbox lease (120 s) and the sweeper's grace (60 s) are tuning values; the
logic that recovers a killed worker's events is the same with 20 s and 10 s,
and the scenario stays within a few minutes. Nothing else differs.
"""

from custsync_project.settings import *  # noqa: F401,F403

INBOX_LEASE_SECONDS = 20
INBOX_SWEEP_AFTER_SECONDS = 10
