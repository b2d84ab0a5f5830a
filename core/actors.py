"""Who did something, as the audit fields and logs name it: a user, or a command with its OS user."""

import getpass


def cli_actor(command: str) -> str:
    """`cli:<command> (<OS user>)`, e.g. `cli:pause_target (root)`."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry for the uid (some containers)
        user = "unknown"
    return f"cli:{command} ({user})"


def user_actor(user) -> str:
    """An admin user by name (the id when it has none)."""
    return user.get_username() or f"user {user.pk}"
