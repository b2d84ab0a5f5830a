"""The webhooks app's one domain exception: a refusal that carries its HTTP status."""


class WebhookError(Exception):
    """The request is refused; `status_code` and `message` go to the sender as is.

    Messages name the problem but never contain a secret, a signature or the
    body; 401 messages never reveal whether a source exists.
    """

    def __init__(self, status_code: int, message: str, *, source: str = ""):
        self.status_code = status_code
        self.message = message
        # Set once the source is authenticated (metrics label); never an unverified name.
        self.source = source
        super().__init__(f"{status_code}: {message}")
