"""Saving figures: parent folders created, format from the suffix."""

from __future__ import annotations

import os


def save(fig, path, dpi: int = 120):
    """Save ``fig`` to ``path`` if given (creating parent folders); return ``fig``."""
    if path is not None:
        path = os.fspath(path)
        parent = os.path.dirname(path)
        if parent:
            os.makedirs(parent, exist_ok=True)
        fig.savefig(path, dpi=dpi)
    return fig
