"""What the command line writes while it works: a progress bar on a terminal, whole lines elsewhere."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any



# Without a terminal (a log file, CI, a pipe) progress comes as whole lines: one as each
# plane of a stack finishes and, in between, at most one per this many seconds.
PLAIN_PROGRESS_INTERVAL = 30.0


def is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def terminal_is_sized(stream: Any) -> bool:
    try:
        size = os.get_terminal_size(stream.fileno())
    except (AttributeError, OSError, ValueError):
        return False
    return size.columns > 0 and size.lines > 0


def clock(seconds: float) -> str:
    """'4:05' or '1:02:03', as a progress line counts time."""
    from tqdm import tqdm

    return tqdm.format_interval(seconds)


class StderrProgress:
    """Progress of one file on stderr: a tqdm bar on a terminal, plain lines anywhere else.

    Called with each progress event of the file's run. The bar shows the share of the run's expected
    time that has passed and the time left the run estimates from its plan (a warm-started plane has
    a budget of its own; early stopping ends most planes before their budget).
    """

    #: Steps of the bar (per mille of the run's expected time).
    BAR_STEPS = 1000

    def __init__(self, label: str, quiet: bool, stream: Any = None) -> None:
        self.label, self.quiet = label, quiet
        self.stream = sys.stderr if stream is None else stream
        self.on_terminal = not quiet and is_terminal(self.stream)
        self._bar: Any = None
        self._latest: Any = None
        self._line_elapsed = 0.0

    def __call__(self, event: Any) -> None:
        if self.quiet:
            return
        previous, self._latest = self._latest, event
        if self.on_terminal:
            self._show_on_bar(event)
        elif previous is not None and previous.plane != event.plane:
            # The next plane's first event already knows how long the finished one took.
            self._write_line(previous, plane_finished=True, seconds_left=event.eta_seconds)
        elif event.elapsed - self._line_elapsed >= PLAIN_PROGRESS_INTERVAL:
            self._write_line(event)

    def _show_on_bar(self, event: Any) -> None:
        if self._bar is None:
            from tqdm import tqdm

            # Some terminals (a bare pseudo-terminal, some CI consoles) report a size of 0 x 0,
            # on which tqdm would draw nothing: they get a fixed size instead. The state leads and the bar
            # is narrow, so that the plane, the iteration, the loss and the time left fit in 80 columns.
            sized = terminal_is_sized(self.stream)
            self._bar = tqdm(total=self.BAR_STEPS, file=self.stream, dynamic_ncols=sized,
                             ncols=None if sized else 80, nrows=None if sized else 24, leave=True,
                             bar_format="{desc} {percentage:3.0f}%|{bar:6}|")
        label = self.label if len(self.label) <= 16 else "…" + self.label[-15:]
        left = event.eta_seconds
        self._bar.set_description_str(f"{label} {self._state(event, short=True)} {clock(event.elapsed)}"
                                      + (f"<{clock(left)}" if left is not None else ""), refresh=False)
        self._bar.update(min(int(self.BAR_STEPS * event.fraction_done), self.BAR_STEPS) - self._bar.n)

    @staticmethod
    def _state(event: Any, *, plane_finished: bool = False, short: bool = False) -> str:
        plane = f"{'' if short else 'plane '}{event.plane + 1}/{event.n_planes}"
        if plane_finished:
            parts = [f"{plane} finished after {event.iteration}/{event.total} iterations"]
        else:
            parts = [plane] if event.n_planes > 1 else []
            parts.append(f"{'it' if short else 'iteration'} {event.iteration}/{event.total}")
        if event.loss == event.loss:  # not yet read (NaN) on a GPU's first steps
            parts.append(f"loss {event.loss:.3g}")
        return (" " if short else ", ").join(parts)

    def _write_line(self, event: Any, *, plane_finished: bool = False, seconds_left: float | None = None) -> None:
        seconds_left = event.eta_seconds if seconds_left is None else seconds_left
        time_left = f", about {clock(seconds_left)} left" if seconds_left else ""
        print(f"{self.label}: {self._state(event, plane_finished=plane_finished)}, "
              f"{clock(event.elapsed)} elapsed{time_left}", file=self.stream, flush=True)
        self._line_elapsed = event.elapsed

    def message(self, text: str) -> None:
        """Print ``text`` as a line of its own, above the bar if one is shown."""
        if self._bar is not None:
            self._bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)

    def close(self, *, finished: bool) -> None:
        """End the progress; ``finished``: the run went to its end (not stopped), so the bar is full."""
        if self._bar is not None:
            if finished:
                self._bar.update(self._bar.total - self._bar.n)
            self._bar.close()
            self._bar = None
        elif finished and self._latest is not None and self._latest.n_planes > 1 and not self.quiet:
            self._write_line(self._latest, plane_finished=True)




def say(args: argparse.Namespace, text: str) -> None:
    if not args.quiet:
        print(text, file=sys.stderr)
