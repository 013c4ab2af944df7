"""The error raised for malformed observations and data files."""


class DataError(ValueError):
    """Observations or a data file are malformed. File errors name the file, the line and the column."""
