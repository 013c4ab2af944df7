"""A Rich progress bar for the training loops (or nothing, with ``progress=False``)."""

from __future__ import annotations


class _Silent:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, done: int, info: str) -> None:
        pass


class _Rich:
    def __init__(self, start: int, total: int, label: str, unit: str):
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(
            TextColumn(f"[bold]{label}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[info]}"),
            transient=False,
        )
        self._task = self._progress.add_task(unit, total=total, completed=start, info="compiling…")

    def __enter__(self):
        self._progress.__enter__()
        return self

    def __exit__(self, *exc):
        return self._progress.__exit__(*exc)

    def update(self, done: int, info: str) -> None:
        self._progress.update(self._task, completed=done, info=info)


def progress_bar(enabled: bool, start: int, total: int, label: str = "calibrate", unit: str = "epochs"):
    return _Rich(start, total, label, unit) if enabled else _Silent()
