"""``livesqa webrtc [--room NAME]``: serve the room page and monitor every participant.

Registered lazily by ``livesqa/cli.py`` through :func:`add_arguments` and :func:`run`. This is a
CLI entry point, so it prints (the room URL, the end-of-call summary).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
from typing import TYPE_CHECKING

from livesqa.errors import LivesqaError, SinkError
from livesqa.webrtc.emodel import EModelParams

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

    from livesqa.spec import ModelSpec
    from livesqa.webrtc.participant import PipelineConfig
    from livesqa.webrtc.rows import RoomWriter
    from livesqa.webrtc.scoreproc import ScoringConfig
    from livesqa.webrtc.server import ServerConfig
    from livesqa.webrtc.service import MonitorService

log = logging.getLogger(__name__)

TOKEN_ENV = "LIVESQA_WEBRTC_TOKEN"
METRICS_TOKEN_ENV = "LIVESQA_METRICS_TOKEN"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from livesqa.cli import _add_model_options, _add_output_options  # same flags as mic/file

    parser.add_argument("--room", metavar="NAME",
                        help="serve only this room (default: any room by URL, / leads to 'main')")
    parser.add_argument("--open-rooms", action="store_true",
                        help="with --room: still allow other rooms by URL (/room/OTHER)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1; 0.0.0.0 exposes it to the network)")
    parser.add_argument("--port", type=int, default=8080, help="HTTP port (default 8080; 0 = any)")
    parser.add_argument("--token", help="secret the page must present to join; also guards the "
                        f"roster and /metrics (or ${TOKEN_ENV})")
    parser.add_argument("--metrics-token", help="a separate secret for /metrics scrapes "
                        f"(Authorization: Bearer ...; or ${METRICS_TOKEN_ENV}; default: --token)")
    parser.add_argument("--allow-origin", action="append", default=[], metavar="ORIGIN",
                        help="a browser origin besides the page's own that may join, e.g. "
                             "https://calls.example.com behind a TLS proxy (repeatable)")
    parser.add_argument("--max-participants", type=int, default=10, metavar="N",
                        help="participants per room (default 10)")
    parser.add_argument("--peer-timeout", type=float, default=10.0, metavar="SECONDS",
                        help="a peer sending no media this long is removed (default 10)")
    parser.add_argument("--connect-timeout", type=float, default=8.0, metavar="SECONDS",
                        help="a join whose media never arrives frees its slot after this "
                             "(default 8)")
    parser.add_argument("--scoring-nice", type=int, default=10, metavar="N",
                        help="CPU niceness added to the scoring process, so a busy host slows "
                             "scoring, never the calls (default 10; 0 = same priority)")
    parser.add_argument("--headless", action="store_true",
                        help="no dashboard: rows go to --csv/--jsonl, figures to /metrics")
    parser.add_argument("--duration", type=float, metavar="SECONDS", help="stop after this long")
    _add_output_options(parser)
    _add_model_options(parser)


def _server_config(args: argparse.Namespace) -> ServerConfig:
    from livesqa.webrtc.room import RoomConfig
    from livesqa.webrtc.server import ServerConfig

    rooms = RoomConfig(max_participants=args.max_participants, peer_timeout_s=args.peer_timeout,
                       connect_timeout_s=args.connect_timeout)
    return ServerConfig(
        host=args.host,
        port=args.port,
        room=args.room or "main",
        pin_room=bool(args.room) and not args.open_rooms,
        token=args.token or os.environ.get(TOKEN_ENV) or None,
        metrics_token=args.metrics_token or os.environ.get(METRICS_TOKEN_ENV) or None,
        allowed_origins=tuple(args.allow_origin),
        rooms=rooms,
    )


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from livesqa.commands import load_scorer, runtime_config
    from livesqa.webrtc.participant import PipelineConfig
    from livesqa.webrtc.rows import RoomCsvWriter, RoomJsonlWriter
    from livesqa.webrtc.scoreproc import ScoringConfig

    if args.scoring_nice < 0 or args.scoring_nice > 19:
        raise LivesqaError(f"--scoring-nice {args.scoring_nice} outside 0..19")
    config = runtime_config(args)
    server_config = _server_config(args)
    scorer = load_scorer(args)  # validated here, with a clear error; scored in the child
    spec, model_path = scorer.spec, scorer.path
    del scorer
    from livesqa.streammonitor import hop_for

    hop = hop_for(config, spec)  # a streaming model's hop is its chunk
    scoring = ScoringConfig(str(model_path), hop, config.gate, args.scoring_nice)
    pipeline = PipelineConfig(
        history_windows=config.history_windows(hop / spec.sample_rate_hz),
        emodel=EModelParams(),
    )
    writers: list[RoomWriter] = []
    try:  # open outputs before serving: a bad path fails before anyone joins
        if args.csv:
            writers.append(RoomCsvWriter(args.csv, fsync=config.fsync))
        if args.jsonl:
            writers.append(RoomJsonlWriter(args.jsonl, fsync=config.fsync))
    except SinkError:
        for w in writers:
            w.close()
        raise
    console = Console()
    try:
        return asyncio.run(_serve(server_config, scoring, spec, pipeline, writers, args,
                                  config.refresh_hz, console))
    finally:
        for w in writers:
            w.close()


async def _serve(server_config: ServerConfig, scoring: ScoringConfig, spec: ModelSpec,
                 pipeline: PipelineConfig, writers: list[RoomWriter], args: argparse.Namespace,
                 refresh_hz: float, console: Console) -> int:
    from rich.live import Live

    from livesqa.pipeline import install_stop_on_sigint
    from livesqa.webrtc.scoreproc import ScoringProcess
    from livesqa.webrtc.service import MonitorService

    stop = install_stop_on_sigint()
    async with ScoringProcess(scoring, spec) as scorer:
        service = MonitorService(server_config, scorer, pipeline, writers)
        try:
            await service.start()
        except OSError as e:
            raise LivesqaError(f"cannot listen on {args.host}:{args.port} ({e.strerror or e})") from e
        print(f"livesqa webrtc: open {service.room_url()} in a browser and allow the microphone",
              flush=True)
        if service.config.token:
            print("livesqa webrtc: joining needs the token (page field or ?token=)", flush=True)
        if service.config.scrape_token:
            print("livesqa webrtc: /metrics needs Authorization: Bearer <token>", flush=True)
        try:
            if args.headless:
                await _wait(stop, args.duration)
            else:
                with Live(get_renderable=lambda: _renderable(service, console.width), console=console,
                          refresh_per_second=refresh_hz, redirect_stdout=False,
                          redirect_stderr=False):
                    await _wait(stop, args.duration)
        finally:
            await service.stop()
    _print_summary(service, console)
    return 0


async def _wait(stop: asyncio.Event, duration_s: float | None) -> None:
    try:
        await asyncio.wait_for(stop.wait(), duration_s)
    except TimeoutError:
        pass


def _renderable(service: MonitorService, width: int) -> RenderableType:
    """The dashboard; a rendering failure shows as a line, it never stops the Live thread."""
    from rich.text import Text

    from livesqa.webrtc.render import ParticipantRow, render_room

    try:
        rows = [
            ParticipantRow(v.info.room, v.info.id, v.info.name, v.pipeline.snapshot(),
                           v.pipeline.net, v.pipeline.ingest.stats.gaps, v.left_wall is not None)
            for v in service.views()
        ]
        return render_room(rows, list(service.events), width=width,
                           title=f"livesqa webrtc · {service.room_url()}")
    except Exception as e:
        log.exception("dashboard")
        return Text(f"dashboard error: {type(e).__name__}: {e}", style="red")


def _print_summary(service: MonitorService, console: Console) -> None:
    from rich.text import Text

    from livesqa.sinks.render import render_summary

    if not service.participants_total:
        print("livesqa webrtc: nobody joined", file=sys.stderr)
        return
    earlier = service.participants_total - len(service.summaries)
    if earlier > 0:
        console.print(f"{earlier} earlier participants: see the CSV/JSONL rows", markup=False)
    for s in service.summaries:
        joined = time.strftime("%H:%M:%S", time.localtime(s.info.joined_wall))
        title = f"{s.info.room}/{s.info.name} ({s.info.id}) · joined {joined} · left ({s.reason})"
        console.print(render_summary(Text(title), s.summary, s.windows, s.scored))
