"""The live terminal dashboard: a rich ``Live`` that re-renders the newest snapshot.

Why a reader, not a sink of events: the dashboard shows the latest immutable
:class:`Snapshot` (from one or more monitors) at ``refresh_hz``; it never slows
the pipeline, and render stays a pure function (:mod:`livesqa.sinks.render`).
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType

from rich.console import Console, Group, RenderableType
from rich.live import Live

from livesqa.sinks.render import render
from livesqa.types import Snapshot


class Dashboard:
    """``with Dashboard(get_snapshots):`` shows the snapshots until the block exits."""

    def __init__(
        self,
        get_snapshots: Callable[[], list[Snapshot]],
        console: Console | None = None,
        refresh_hz: float = 4.0,
        history_width: int = 48,
    ) -> None:
        self._get = get_snapshots
        self._history_width = history_width
        self.console = console or Console()
        self._live = Live(
            get_renderable=self.renderable,
            console=self.console,
            refresh_per_second=refresh_hz,
            transient=False,
            redirect_stdout=False,
            redirect_stderr=False,
        )

    def renderable(self) -> RenderableType:
        # the history takes what the other columns (~58 cells) leave, up to history_width
        width = max(8, min(self._history_width, self.console.width - 58))
        return Group(*(render(s, width) for s in self._get()))

    def __enter__(self) -> Dashboard:
        self._live.start(refresh=True)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._live.update(self.renderable(), refresh=True)
        self._live.stop()
