"""gunicorn settings for the gateway (`web` in the Procfile). Every value can be overridden by the environment."""

import multiprocessing
import os
import shutil

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8000')}"
# The gateway is CPU-bound Python with short database round trips: a few sync
# workers with threads keep both cores busy while commits wait on the database.
workers = int(os.environ.get("WEB_CONCURRENCY", min(multiprocessing.cpu_count() * 2, 4)))
threads = int(os.environ.get("WEB_THREADS", 4))
worker_class = "gthread" if threads > 1 else "sync"
timeout = int(os.environ.get("WEB_TIMEOUT", 30))
graceful_timeout = int(os.environ.get("WEB_GRACEFUL_TIMEOUT", 30))
keepalive = int(os.environ.get("WEB_KEEPALIVE", 5))
max_requests = int(os.environ.get("WEB_MAX_REQUESTS", 0))
max_requests_jitter = 200
# 256 KiB body limit is enforced by the view; keep header limits at gunicorn defaults.
accesslog = os.environ.get("WEB_ACCESS_LOG", "-") or None
# Path without the query string: searches (?email=, ?q=) must not put personal data into logs.
access_log_format = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(L)ss'
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")


# With METRICS_ROOT (one host running web and workers), the gateway writes below it.
if os.environ.get("METRICS_ROOT") and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = os.path.join(os.environ["METRICS_ROOT"], "web")


def on_starting(server):
    """Prometheus multiprocess mode: start from an empty metrics directory."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        shutil.rmtree(directory, ignore_errors=True)
        os.makedirs(directory, exist_ok=True)


def child_exit(server, worker):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
