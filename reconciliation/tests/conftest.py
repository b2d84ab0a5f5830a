from targets.tests.support import qcluster, sandbox, target_env  # noqa: F401
