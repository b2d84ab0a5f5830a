"""The worker process: what `manage.py qcluster` (and its other name, `run_worker`) runs.

**Every kind of work in every worker.** custsync has two django-q2 clusters:
the main one (`Q_CLUSTER["name"]`: inbox pump, sweepers, scheduled
reconciliation) and the delivery one (`settings.DELIVERY_CLUSTER`, its own
queue and `Q_DELIVERY_WORKERS` processes). Deliveries stay on their own queue
because a delivery pump waits on its target (rate limit, slow answers, due
retries) for up to its 20 s budget: on a shared queue a few such pumps would
hold every worker process and the inbox would wait behind them. A django-q2
process consumes only its own cluster's queue, so django-q2's `qcluster`
alone would process the inbox and silently deliver nothing. The project
therefore ships its own `qcluster` command (the roof app is listed before
`django_q` in INSTALLED_APPS, and Django takes a command from the first app
that has it), which runs this module's `worker_run`: a small supervisor that
starts one child process per cluster (each `manage.py qcluster` with
`Q_CLUSTER_NAME` set, which runs `cluster_run`) and stops them. N such
processes are a complete deployment. A deployment that splits kinds of work by
configuration starts `Q_CLUSTER_NAME=<cluster> manage.py qcluster` (or
`run_worker --no-delivery`): that process says at start-up, as a warning in
its log, which kinds of work it does not do.

**Stopping.** django-q2 hangs when its process group gets SIGTERM (what
honcho sends, and a terminal's Ctrl-C sends SIGINT to the group): its
sentinel process resets SIGTERM to the default action, so the signal kills it
while it sleeps in `stop_event.wait()`; the cluster's main process then calls
`stop_event.set()`, and a `multiprocessing.Event`'s `set()` waits for every
registered sleeper to wake (`Condition.notify` acquires `_woken_count` once
per sleeper): the dead sentinel never does, so `set()` blocks forever and the
worker is SIGKILLed. Here instead:

- the supervisor and each cluster's main process only note the signal and
  stop in their main loop; the cluster process calls `stop_event.set()` only
  while its sentinel is alive (`_Sentinel` no longer dies on SIGTERM);
- the sentinel notes the signal, stops replacing workers that exit, and on
  stop sends each worker SIGTERM before django-q2's orderly stop (pusher
  first, then a STOP per worker, then the monitor);
- a worker process that gets SIGTERM or SIGINT (to itself or to the group)
  starts no further task (`pre_execute`) and sets `core.shutdown`, so the
  inbox pump hands over after its batch in hand; a task still running after
  `WORKER_STOP_GRACE_SECONDS` is interrupted with `WorkerStopping` (a
  `SystemExit`, as django-q2's own task timeout is), so its `finally` blocks
  release what it holds (the delivery pump's lease and claimed messages; a
  rolled-back inbox batch is taken again after its lease). Tasks that were
  fetched but not run are redelivered by the ORM broker after `Q_RETRY` and
  made up by the sweepers with Redis: the database rows are the truth.

So SIGTERM or SIGINT, to the worker's process or to its whole process group,
stops it within about `WORKER_STOP_GRACE_SECONDS` + 2 s with exit status 0.
If a cluster dies on its own, the worker stops the other and exits non-zero,
so its container or unit restarts.
"""

from __future__ import annotations

import ctypes
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from multiprocessing import Event

from django import db
from django.conf import settings
from django_q.cluster import Sentinel, get_mp_context
from django_q.conf import Conf
from django_q.signals import post_execute_in_worker, post_spawn, pre_execute

from core.shutdown import shutdown_request, shutdown_requested

logger = logging.getLogger(__name__)

# Beyond the grace: the sentinel's own orderly stop (pusher, STOPs, monitor) takes about a second.
STOP_MARGIN_SECONDS = 10.0
POLL_SECONDS = 0.1
STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}
PR_SET_PDEATHSIG = 1
try:  # loaded here, not after fork: dlopen in a forked child can deadlock
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):
    _prctl = None


class WorkerStopping(SystemExit):
    """Raised inside a task still running when the stop grace is over; exit status 0."""


def cluster_names() -> list[str]:
    """Every cluster a complete worker runs: the main one, then each of ALT_CLUSTERS."""
    return [settings.Q_CLUSTER["name"], *settings.Q_CLUSTER.get("ALT_CLUSTERS", {})]


def cluster_work(name: str) -> str:
    """The kinds of work a cluster's queue carries (for start-up lines and warnings)."""
    if name == settings.Q_CLUSTER["name"]:
        return "inbox processing, sweeps, scheduled reconciliation"
    if name == settings.DELIVERY_CLUSTER:
        return "deliveries to targets"
    return f"tasks sent to the {name} queue"


def _missing_work_warn(running: list[str]) -> None:
    """Never drop a kind of work silently: name what this process leaves to other workers."""
    missing = [name for name in cluster_names() if name not in running]
    if missing:
        logger.warning(
            "this worker runs only cluster %s (%s); %s need another worker that runs %s "
            "(`manage.py qcluster` runs every cluster)",
            ", ".join(running), "; ".join(cluster_work(name) for name in running),
            " and ".join(cluster_work(name) for name in missing),
            " and ".join(f"Q_CLUSTER_NAME={name}" for name in missing),
        )


def _stop_grace() -> float:
    return max(0.0, float(settings.WORKER_STOP_GRACE_SECONDS))


def _die_with_parent() -> None:
    """Linux: a cluster process gets SIGTERM if the supervisor dies, even by SIGKILL."""
    if _prctl is not None:
        _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _descendants(pid: int) -> list[int]:
    """Every live descendant of `pid` (Linux /proc), to clean up after a cluster that did not stop."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _kill_tree(pid: int) -> None:
    for victim in [*_descendants(pid), pid]:
        try:
            os.kill(victim, signal.SIGKILL)
        except ProcessLookupError:
            pass


class _StopFlag:
    """Set from a signal handler; read by a polling main loop (no locks inside the handler)."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._handle)
        signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum, frame) -> None:
        if self.signum is None:
            self.signum = signum

    def __bool__(self) -> bool:
        return self.signum is not None


# --- the supervisor: `manage.py qcluster` ----------------------------------------

def metrics_setup() -> None:
    """Per-worker multiprocess directory (emptied), and `/metrics` on METRICS_PORT if set.

    Runs before any cluster process starts, so they inherit PROMETHEUS_MULTIPROC_DIR from
    the environment (prometheus-client decides its mode when a metric is created).
    """
    root = os.environ.get("METRICS_ROOT")
    if root and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = os.path.join(root, f"worker-{os.getpid()}")
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        shutil.rmtree(directory, ignore_errors=True)
        os.makedirs(directory, exist_ok=True)
    port = os.environ.get("METRICS_PORT")
    if port:
        from prometheus_client import CollectorRegistry, start_http_server
        from prometheus_client.multiprocess import MultiProcessCollector

        registry = CollectorRegistry()
        if directory:
            MultiProcessCollector(registry, path=directory)
        start_http_server(int(port), registry=registry)
        logger.info("worker metrics on :%s/metrics", port)


def _cluster_start(name: str, *, run_once: bool) -> subprocess.Popen:
    # Same process group as the supervisor: SIGKILL to the group (a lost machine) takes everything.
    command = [sys.executable, str(settings.BASE_DIR / "manage.py"), "qcluster", "--skip-checks", "--supervised"]
    if run_once:
        command.append("--run-once")
    return subprocess.Popen(command, env={**os.environ, "Q_CLUSTER_NAME": name}, preexec_fn=_die_with_parent)


def worker_run(*, clusters: list[str] | None = None, run_once: bool = False) -> int:
    """Run `clusters` (default: every cluster) as child processes until a signal or a cluster's death.

    Returns the exit status: 0 after SIGTERM/SIGINT (or --run-once), 1 if a cluster died or did
    not stop within the grace plus STOP_MARGIN_SECONDS (it is then killed with its processes).
    """
    clusters = clusters or cluster_names()
    stop = _StopFlag()
    stop.install()
    metrics_setup()
    db.connections.close_all()  # the system checks may have opened one; the supervisor needs none
    _missing_work_warn(clusters)
    children = {name: _cluster_start(name, run_once=run_once) for name in clusters}
    logger.info("worker %s started: %s", os.getpid(), "; ".join(
        f"cluster {name} (pid {process.pid}: {cluster_work(name)})" for name, process in children.items()))
    status = 0
    while not stop:
        ended = [name for name, process in children.items() if process.poll() is not None]
        if run_once and len(ended) == len(children):
            status = int(any(process.returncode for process in children.values()))
            break
        if ended and not run_once:
            logger.error("cluster %s exited with %s: stopping the worker", ended[0], children[ended[0]].returncode)
            status = 1
            break
        time.sleep(POLL_SECONDS)
    if stop:
        logger.info("worker %s: %s received, stopping its clusters", os.getpid(), signal.Signals(stop.signum).name)
    return max(status, _clusters_stop(children))


def _clusters_stop(children: dict[str, subprocess.Popen]) -> int:
    """SIGTERM each live cluster process (a second one after a group-wide signal is harmless) and wait."""
    for process in children.values():
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + _stop_grace() + STOP_MARGIN_SECONDS
    status = 0
    for name, process in children.items():
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            logger.error("cluster %s did not stop in time: killing it and its processes", name)
            _kill_tree(process.pid)
            process.wait(timeout=10)
            status = 1
    logger.info("worker %s stopped", os.getpid())
    return status


# --- one cluster: `Q_CLUSTER_NAME=<name> manage.py qcluster` ---------------------

class _Sentinel(Sentinel):
    """django-q2's sentinel, but a signal to it (or its group) no longer kills it: it stops in order."""

    stopping = False

    def start(self):
        # django-q2's __init__ set SIGTERM to its default action (the cause of the hang) just before this.
        signal.signal(signal.SIGTERM, self._signalled)
        signal.signal(signal.SIGINT, self._signalled)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)  # blocked by cluster_run across the fork
        super().start()

    def _signalled(self, signum, frame):
        # Only a flag: the cluster process sets stop_event (setting it here, inside our own wait, deadlocks).
        self.stopping = True

    def reincarnate(self, process):
        if self.stopping and process in self.pool:
            self.pool.remove(process)  # it stopped on the signal: not replaced
            return
        super().reincarnate(process)

    def stop(self):
        self.stopping = True
        for process in list(self.pool):
            if process.is_alive():
                os.kill(process.pid, signal.SIGTERM)  # each finishes within the grace or releases what it holds
        super().stop()


def cluster_run(*, supervised: bool, run_once: bool = False) -> int:
    """Run the cluster named by Q_CLUSTER_NAME (default: the main one) until SIGTERM/SIGINT."""
    name = Conf.CLUSTER_NAME  # django-q2 read Q_CLUSTER_NAME when it was imported
    stop = _StopFlag()
    stop.install()
    if not supervised:
        metrics_setup()
        _missing_work_warn([name])
    post_spawn.connect(_worker_signals_install, dispatch_uid="custsync_project.worker.signals")
    db.connections.close_all()  # never share a connection with the forked processes
    stop_event, start_event = Event(), Event()
    sentinel = get_mp_context().Process(
        target=_Sentinel, name=f"Process-{uuid.uuid4().hex}",
        args=(stop_event, start_event, uuid.uuid4(), None, None),
    )
    # Blocked across the fork: a signal during the sentinel's set-up waits for its own handler.
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        sentinel.start()
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    logger.info("cluster %s started (pid %s, sentinel %s): %s", name, os.getpid(), sentinel.pid, cluster_work(name))
    while not stop and sentinel.is_alive():
        if run_once and start_event.is_set():
            break
        time.sleep(POLL_SECONDS)
    if not sentinel.is_alive():
        logger.error("cluster %s: its sentinel exited with %s", name, sentinel.exitcode)
        return 1
    # In a thread: Event.set() would block forever if the sentinel died inside its wait after all.
    threading.Thread(target=stop_event.set, daemon=True).start()
    sentinel.join(timeout=_stop_grace() + STOP_MARGIN_SECONDS)
    if sentinel.is_alive():
        logger.error("cluster %s did not stop in time: killing its processes", name)
        _kill_tree(sentinel.pid)
        sentinel.join(timeout=10)
        return 1
    logger.info("cluster %s stopped", name)
    return 0


# --- inside each django-q2 worker process ----------------------------------------

_busy = False


def _worker_signals_install(sender, proc_name, **kwargs) -> None:
    """post_spawn, in each new worker process: our signal handling and the task bracket."""
    signal.signal(signal.SIGTERM, _worker_stop_signalled)
    signal.signal(signal.SIGINT, _worker_stop_signalled)
    signal.signal(signal.SIGUSR1, _worker_grace_over)
    pre_execute.connect(_task_starting, dispatch_uid="custsync_project.worker.task_starting")
    post_execute_in_worker.connect(_task_finished, dispatch_uid="custsync_project.worker.task_finished")


def _worker_stop_signalled(signum, frame) -> None:
    if shutdown_requested():
        return
    shutdown_request()
    if _busy:  # idle: the sentinel's STOP ends the process; a task already fetched is not started
        timer = threading.Timer(_stop_grace(), os.kill, (os.getpid(), signal.SIGUSR1))
        timer.daemon = True
        timer.start()


def _worker_grace_over(signum, frame) -> None:
    if _busy:
        logger.warning("worker %s: task still running after the %.1f s stop grace: interrupted",
                       os.getpid(), _stop_grace())
        raise WorkerStopping(0)


def _task_starting(sender, func=None, task=None, **kwargs) -> None:
    global _busy
    if shutdown_requested():
        # Not started: the broker redelivers it after Q_RETRY (ORM), or the sweepers make it up (Redis).
        logger.info("worker %s stopping: task %s not started", os.getpid(), (task or {}).get("name"))
        raise WorkerStopping(0)
    _busy = True


def _task_finished(sender, **kwargs) -> None:
    global _busy
    _busy = False
