"""django-q2 tasks: thin wrappers over services; they take ids and are safe to run twice."""

from . import maintenance, services


def target_pump(target_id: int) -> dict:
    """Kicked on commit of new outbox rows: deliver the target's due messages for a bounded time."""
    return services.target_pump(target_id=target_id)


def outbox_sweep() -> dict:
    """Periodic (every minute): kick targets whose messages are due but whose kick was lost; resume stale resyncs."""
    return {**services.outbox_sweep(), "resyncs": maintenance.resyncs_stale_resume()}


def target_resync_run(resync_id: int) -> str:
    """A resync job (started in the admin or by `resync_target --async`), resumed by the sweeper if lost."""
    return maintenance.target_resync_run(resync_id=resync_id).progress
