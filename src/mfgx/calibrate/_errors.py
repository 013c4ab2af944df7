"""The error raised for malformed observations, models or calibration settings."""


class CalibrationError(ValueError):
    """Observations, a parameter path or a calibration setting is malformed, or a fit failed."""


def runtime_reason(err: Exception) -> str:
    """The message of an Equinox runtime error, without the stack traces around it."""
    for line in str(err).splitlines():
        if "RuntimeError: " in line:
            return line.split("RuntimeError: ", 1)[1].strip()
    lines = [x for x in str(err).splitlines() if x.strip()]
    return lines[0] if lines else type(err).__name__
