"""``livesqa`` command line: mic | devices | file | batch | replay | bench | inspect | webrtc.

Every user error (:class:`LivesqaError`) becomes one line on stderr and a non-zero
exit code, with no traceback. Exit codes: 0 ok, 1 an error (or, for ``file``,
at least one file failed), 2 bad usage.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable
from pathlib import Path

from livesqa import __version__
from livesqa.errors import LivesqaError

WEBRTC_HINT = "the webrtc command needs extra packages: pip install 'livesqa[webrtc]'"
SAMPLE_CALL = Path(__file__).resolve().parent / "assets" / "sample_call.flac"


def _add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", metavar="PATH",
                   help="ONNX model (default: $LIVESQA_MODEL, then exported/*.onnx)")
    p.add_argument("--config", metavar="TOML", help="runtime config (default configs/livesqa.toml)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config key, e.g. --set hop_s=0.5 (repeatable)")
    p.add_argument("--hop", type=float, metavar="SECONDS",
                   help="seconds between windows (default from config: 1.0)")
    p.add_argument("--cpu", type=int, metavar="N",
                   help="pin this process to CPU core N (Linux): one monitor process per core")


def _add_output_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--csv", metavar="OUT", help="append one row per window to this CSV file")
    p.add_argument("--jsonl", metavar="OUT", help="append one JSON object per window to this file")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="livesqa",
        description="Real-time, reference-free call-quality monitor (NISQA dimensions, 1-5).",
    )
    parser.add_argument("--version", action="version", version=f"livesqa {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("mic", help="live dashboard of a microphone (or --headless to CSV)")
    p.add_argument("--device", metavar="NAME|ID", help="input device (see `livesqa devices`)")
    p.add_argument("--headless", action="store_true", help="no dashboard; write --csv/--jsonl only")
    p.add_argument("--duration", type=float, metavar="SECONDS", help="stop after this long")
    _add_output_options(p)
    _add_model_options(p)

    sub.add_parser("devices", help="list audio input devices")

    p = sub.add_parser("file", help="score audio files and folders as fast as one core allows")
    p.add_argument("paths", nargs="+", metavar="PATH", help="files or folders (wav, flac, ogg, mp3)")
    p.add_argument("--summary", metavar="OUT", help="write one summary row per file to this CSV")
    p.add_argument("--realtime", action="store_true",
                   help="stream each file through the live pipeline and dashboard (like replay)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run: skip files it completed and windows it "
                        "already wrote to --csv/--jsonl (same command line plus --resume)")
    p.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="score files in N worker processes, each pinned to its own core with "
                        "one ONNX thread (0 = one per core; default 1: this process only)")
    _add_output_options(p)
    _add_model_options(p)

    p = sub.add_parser("batch", help="score a call archive on a Ray cluster (needs livesqa[ray])",
                       description="Score every file under PATHs on Ray actors (one core and one "
                       "model each); rows and per-file summaries go to --out as shards; a rerun "
                       "skips files already complete.")
    p.add_argument("paths", nargs="+", metavar="PATH|URI",
                   help="files or folders: local (on every node) or s3://, gs://, hdfs://, file://")
    p.add_argument("--out", required=True, metavar="DIR|URI",
                   help="output folder: rows/, summary/ and errors/ shards (local or a URI)")
    p.add_argument("--format", choices=["parquet", "csv"], default="parquet",
                   help="shard format (default parquet)")
    p.add_argument("--ray", metavar="ADDRESS",
                   help="Ray cluster to join: 'auto' (the one `ray start` made) or "
                        "ray://HOST:10001 (default: start a local Ray on this machine)")
    p.add_argument("--num-cpus", type=int, metavar="N",
                   help="local Ray only: CPUs it may use (default: all)")
    p.add_argument("--actors", type=int, metavar="N",
                   help="scoring actors (default: one per CPU of the cluster)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--model", metavar="PATH",
                   help="ONNX model (default: $LIVESQA_MODEL, then exported/*.onnx); sent to "
                        "the actors, nodes need no copy")
    p.add_argument("--config", metavar="TOML", help="runtime config (default configs/livesqa.toml)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config key, e.g. --set hop_s=0.5 (repeatable)")
    p.add_argument("--hop", type=float, metavar="SECONDS",
                   help="seconds between windows (default from config: 1.0)")

    p = sub.add_parser("replay", help="stream a recording through the live dashboard in real time")
    p.add_argument("path", nargs="?", metavar="FILE", help=f"recording (default: {SAMPLE_CALL.name})")
    p.add_argument("--headless", action="store_true", help="no dashboard; write --csv/--jsonl only")
    p.add_argument("--duration", type=float, metavar="SECONDS", help="stop after this long")
    _add_output_options(p)
    _add_model_options(p)

    p = sub.add_parser("bench", help="model latency/RTFX on one thread; --pipeline for overhead")
    p.add_argument("--pipeline", action="store_true",
                   help="replay the bundled sample call (real speech) through the whole "
                        "pipeline as fast as possible")
    p.add_argument("--windows", type=int, default=50, help="model bench: windows to time")
    p.add_argument("--minutes", type=float, default=10.0, help="pipeline bench: audio minutes")
    p.add_argument("--live-seconds", type=float, default=20.0,
                   help="pipeline bench: real-time segment for arrival-to-score latency")
    p.add_argument("--json", dest="json_out", metavar="OUT", help="also write the numbers as JSON")
    p.add_argument("--all-cores", action="store_true",
                   help="do not pin the process to one CPU core (default: pinned, as deployed)")
    p.add_argument("--streaming", metavar="MODEL",
                   help="a streaming model: time it side by side with --model (windowed), "
                        "interleaved, batched across streams")
    _add_model_options(p)

    p = sub.add_parser("inspect", help="print a model's spec (from its ONNX metadata)")
    p.add_argument("path", nargs="?", metavar="MODEL", help="model (default: the default model)")

    p = sub.add_parser("webrtc", help="monitor every participant of WebRTC rooms (browser page)")
    try:
        from livesqa.webrtc.command import add_arguments
    except ImportError:
        p.set_defaults(webrtc_missing=True)
    else:
        add_arguments(p)
    return parser


# --- commands -------------------------------------------------------------------------------


def _cmd_devices(args: argparse.Namespace) -> int:
    from livesqa.sources.mic import list_input_devices

    devices = list_input_devices()
    if not devices:
        print("no audio input devices found")
        return 1
    for d in devices:
        mark = "*" if d.is_default else " "
        print(f"{mark} {d.index:3d}  {d.name}  ({d.channels} ch, {d.default_rate_hz} Hz)")
    return 0


def _cmd_inspect(args: argparse.Namespace) -> int:
    from livesqa.models import find_model
    from livesqa.spec import read_spec

    path = find_model(args.path)
    spec = read_spec(path)
    print(f"model      {path}")
    for key, value in spec.__dict__.items():
        print(f"{key:<15}{value}")
    print(f"{'window_s':<15}{spec.window_s:g}\n{'hop_s':<15}{spec.hop_s:g}")
    return 0


#: Import names of the [webrtc] extra; a missing one means the extra is not installed.
WEBRTC_MODULES = ("aiortc", "av", "aiohttp", "prometheus_client")


def _cmd_webrtc(args: argparse.Namespace) -> int:
    if getattr(args, "webrtc_missing", False):
        raise LivesqaError(WEBRTC_HINT)
    import importlib

    for name in WEBRTC_MODULES:  # before run(): it imports them deep inside, mid-start-up
        try:
            importlib.import_module(name)
        except ImportError as e:
            raise LivesqaError(f"{WEBRTC_HINT} ({name} is missing)") from e
    from livesqa.webrtc.command import run

    return int(run(args))


def _cmd_batch(args: argparse.Namespace) -> int:
    from livesqa.raybatch import cmd_batch

    return cmd_batch(args)


def _commands() -> dict[str, Callable[[argparse.Namespace], int]]:
    from livesqa import commands

    return {
        "mic": commands.cmd_mic,
        "devices": _cmd_devices,
        "file": commands.cmd_file,
        "replay": commands.cmd_replay,
        "batch": _cmd_batch,
        "bench": commands.cmd_bench,
        "inspect": _cmd_inspect,
        "webrtc": _cmd_webrtc,
    }


class Terminated(KeyboardInterrupt):
    """SIGTERM outside the pipeline's own handler (e.g. while the model loads): exit 143."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated()


def _interrupted_by(error: BaseException) -> KeyboardInterrupt | None:
    """The Ctrl-C/SIGTERM behind ``error`` (an import cut by Ctrl-C fails as ImportError)."""
    seen = 0
    e: BaseException | None = error
    while e is not None and seen < 20:
        if isinstance(e, KeyboardInterrupt):
            return e
        e = e.__cause__ or e.__context__
        seen += 1
    return None


def main(argv: list[str] | None = None) -> int:
    """Run one command; every failure is one line on stderr and an exit code, never a traceback.

    ``LIVESQA_DEBUG=1`` shows the traceback of an unexpected error (a bug).
    """
    import signal

    previous = None
    with contextlib.suppress(ValueError):  # not the main thread: keep the default
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        return _guarded(argv)
    finally:
        if previous is not None:
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(signal.SIGTERM, previous)


def _guarded(argv: list[str] | None) -> int:
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        return _main(args)
    except KeyboardInterrupt as e:
        print("livesqa: interrupted", file=sys.stderr)
        return 143 if isinstance(e, Terminated) else 130
    except Exception as e:  # a bug or a broken install: one line, the traceback on request
        stop = _interrupted_by(e)
        if stop is not None:
            print("livesqa: interrupted", file=sys.stderr)
            return 143 if isinstance(stop, Terminated) else 130
        if os.environ.get("LIVESQA_DEBUG"):
            raise
        if isinstance(e, ImportError):
            print(f"livesqa: error: cannot import {e.name or 'a module'} ({e}); reinstall "
                  "livesqa with the extra this command needs (see README, Install)",
                  file=sys.stderr)
            return 1
        print(f"livesqa: internal error: {e.__class__.__name__}: {e} (a bug: please report it; "
              "LIVESQA_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 1


def _main(args: argparse.Namespace) -> int:
    try:
        if getattr(args, "jobs", 1) != 1:
            from livesqa.parallel import check_args

            check_args(args)
        if getattr(args, "cpu", None) is not None:
            from livesqa import affinity

            affinity.pin(args.cpu)
        return _commands()[args.command](args)
    except LivesqaError as e:
        print(f"livesqa: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
