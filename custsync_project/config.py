"""Errors shared by the sync-config importers of every app."""


class SyncConfigError(ValueError):
    """The sync config is invalid; `path` names the offending key, e.g. `cdp.base_url`."""

    def __init__(self, path: str, message: str):
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)
