"""Progress bars for long commands (tqdm), on stderr and only when stderr is a terminal: logs,
pipes and CI see nothing but the results."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

from .names import terminal

__all__ = ["Progress", "progress_bar"]


class Progress:
    """A bar of `total` steps: `describe(text)` says what runs now, `advance()` finishes a step."""

    def __init__(self, bar):
        self._bar = bar

    def describe(self, text: str) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(terminal(text)[-60:], refresh=True)

    def advance(self, steps: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(steps)


@contextlib.contextmanager
def progress_bar(total: int, label: str) -> Iterator[Progress]:
    if not sys.stderr.isatty():
        yield Progress(None)
        return
    from tqdm import tqdm

    with tqdm(total=total, desc=label, unit="step", file=sys.stderr, leave=False, dynamic_ncols=True) as bar:
        yield Progress(bar)
