"""Progress bars for long runs of replicates (bootstrap, power)."""

from __future__ import annotations

import sys


class Progress:
    """A progress bar: tqdm's (terminals and notebooks) when installed, else one line on stderr.

    Shown by default when stderr is a terminal or tqdm can draw in a notebook.
    """

    def __init__(self, total: int, enabled: bool | None, desc: str = "bootstrap"):
        self.total, self.done = total, 0
        try:
            from tqdm.auto import tqdm
        except ImportError:
            tqdm = None
        self.enabled = (sys.stderr.isatty() or tqdm is not None and "ipykernel" in sys.modules) if enabled is None else enabled
        self.desc = desc
        self.bar = tqdm(total=total, desc=desc) if tqdm is not None and self.enabled else None

    def step(self, n: int = 1) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        elif self.enabled:
            filled = int(30 * self.done / self.total)
            sys.stderr.write(f"\r{self.desc} [{'#' * filled}{'.' * (30 - filled)}] {self.done}/{self.total}")
            sys.stderr.flush()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.enabled:
            sys.stderr.write("\n")
