"""canonical's one domain exception (re-exported by services)."""


class CanonicalError(Exception):
    """The event or request as a whole cannot be applied; the message names the problem."""


class MappingError(CanonicalError):
    """The event's data cannot be mapped (unknown schema version, data not an object...)."""
