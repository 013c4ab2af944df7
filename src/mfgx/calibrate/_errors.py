"""The error raised for malformed observations, models or calibration settings."""


class CalibrationError(ValueError):
    """Observations, a parameter path or a calibration setting is malformed, or a fit failed."""
