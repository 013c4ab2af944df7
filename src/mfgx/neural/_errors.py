"""The error raised for malformed neural-MFG models, data or settings."""


class NeuralError(ValueError):
    """A particle model, its data or a training setting is malformed, or a fit failed."""
