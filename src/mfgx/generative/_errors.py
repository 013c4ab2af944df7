"""The error raised for malformed generative models, data or settings."""


class GenerativeError(ValueError):
    """A potential, a problem, its data or a training setting is malformed, or a fit failed."""
