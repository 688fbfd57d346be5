"""Where ``livesqa batch`` reads calls and writes rows: local paths or pyarrow filesystem URIs.

Why pyarrow's filesystems: one API covers a shared local disk, ``file://``, ``s3://``,
``gs://`` and ``hdfs://``, and the same library writes the Parquet shards, so a
bucket of recordings needs no other client. (pyarrow comes with the ``[ray]`` extra;
this module is only imported by the batch command.)

Output layout under OUT (a folder or a URI)::

    OUT/rows/<key>.parquet|csv     one shard per input file: its window rows (livesqa.sinks.schema)
    OUT/summary/<key>.parquet|csv  one row per file: the ``--summary`` columns; written last,
                                   so its presence means the file's rows are complete
    OUT/errors/<key>.parquet|csv   one row per failed file (the summary columns, ``error`` set)

``<key>`` is the file's name plus a hash of its full path or URI, so two calls named
alike in different folders never collide and a rerun finds the same key. Shards are
written to a temporary name and moved into place: a reader never sees half a shard,
and a retried file overwrites its own shard instead of adding a second one.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from livesqa.errors import AudioInputError, SinkError
from livesqa.sinks.schema import COLUMNS
from livesqa.sources.file import AUDIO_SUFFIXES

FORMATS = ("parquet", "csv")
TMP_PREFIX = ".tmp-"


_ROW_INTS = {"clipping", "skipped", "gap"}
_ROW_STRINGS = {"wall_time", "source", "room", "participant", "model", "model_version"}
_SUMMARY_INTS = {"windows", "scored", "skipped"}
_SUMMARY_STRINGS = {"source", "error"}


def resolve(text: str) -> tuple[Any, str]:
    """``(pyarrow filesystem, path on it)`` for a local path or a URI (s3://, gs://, file://...)."""
    from pyarrow import fs as pafs

    if "://" not in text:
        return pafs.LocalFileSystem(), str(Path(text).resolve())
    try:
        return pafs.FileSystem.from_uri(text)
    except (OSError, ValueError, TypeError) as e:  # unknown scheme, no credentials, no network
        raise AudioInputError(f"{text}: cannot open this location ({_reason(e)})") from e


def is_local(filesystem: Any) -> bool:
    from pyarrow import fs as pafs

    return isinstance(filesystem, pafs.LocalFileSystem)


def source_name(text: str, path: str, filesystem: Any) -> str:
    """How a file is named in rows and messages: its absolute path, or its full URI."""
    if is_local(filesystem):
        return path
    scheme = text.split("://", 1)[0]
    return f"{scheme}://{path}"


def list_sources(inputs: Sequence[str]) -> list[str]:
    """Every audio file under ``inputs`` (files as given, folders recursively), sorted per input.

    Raises :class:`AudioInputError` naming the first input that does not exist.
    """
    from pyarrow import fs as pafs

    out: list[str] = []
    for text in inputs:
        filesystem, path = resolve(text)
        try:
            info = filesystem.get_file_info(path)
            if info.type == pafs.FileType.NotFound:
                raise AudioInputError(f"{text}: no such file or folder")
            if info.type == pafs.FileType.Directory:
                found = filesystem.get_file_info(pafs.FileSelector(path, recursive=True))
                names = sorted(f.path for f in found if f.type == pafs.FileType.File
                               and Path(f.base_name).suffix.lower() in AUDIO_SUFFIXES)
                out += [source_name(text, n, filesystem) for n in names]
            else:
                out.append(source_name(text, path, filesystem))
        except OSError as e:
            raise AudioInputError(f"{text}: cannot list ({_reason(e)})") from e
    return out


def shard_key(source: str) -> str:
    """A stable, collision-free file name for one input's shards."""
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", source.rstrip("/").rsplit("/", 1)[-1])[:80]
    digest = hashlib.sha1(source.encode("utf-8")).hexdigest()[:12]
    return f"{base}-{digest}"


@dataclass(frozen=True)
class Output:
    """The output folder (local or URI) and the shard format."""

    location: str
    fmt: str = "parquet"

    def __post_init__(self) -> None:
        if self.fmt not in FORMATS:
            raise SinkError(f"--format {self.fmt}: choose one of {', '.join(FORMATS)}")

    def open(self) -> tuple[Any, str]:
        try:
            return resolve(self.location)
        except AudioInputError as e:
            raise SinkError(str(e)) from e

    def check(self) -> None:
        """Refuse an output that is a file, touching nothing (before any work starts)."""
        from pyarrow import fs as pafs

        filesystem, root = self.open()
        try:
            if filesystem.get_file_info(root).type == pafs.FileType.File:
                raise SinkError(f"{self.location}: is a file; --out needs a folder")
        except OSError as e:
            raise SinkError(f"{self.location}: cannot read ({_reason(e)})") from e

    def prepare(self) -> None:
        """Create OUT/rows, OUT/summary, OUT/errors and clear temporaries of killed runs."""
        from pyarrow import fs as pafs

        self.check()
        filesystem, root = self.open()
        try:
            for sub in ("rows", "summary", "errors"):
                filesystem.create_dir(f"{root}/{sub}", recursive=True)
                selector = pafs.FileSelector(f"{root}/{sub}", allow_not_found=True)
                for f in filesystem.get_file_info(selector):
                    if f.base_name.startswith(TMP_PREFIX):
                        filesystem.delete_file(f.path)
        except OSError as e:
            raise SinkError(f"{self.location}: cannot write here ({_reason(e)})") from e

    def completed(self) -> set[str]:
        """Keys whose summary shard exists: their rows are complete, a rerun skips them."""
        from pyarrow import fs as pafs

        filesystem, root = self.open()
        selector = pafs.FileSelector(f"{root}/summary", allow_not_found=True)
        suffix = f".{self.fmt}"
        return {f.base_name[: -len(suffix)] for f in filesystem.get_file_info(selector)
                if f.base_name.endswith(suffix) and not f.base_name.startswith(TMP_PREFIX)}

    def write(self, kind: str, key: str, records: Sequence[dict[str, Any]]) -> str:
        """Write ``records`` as OUT/<kind>/<key>.<fmt> (atomically: temp name, then move)."""
        from livesqa.commands import SUMMARY_COLUMNS  # the same columns as file --summary

        columns = COLUMNS if kind == "rows" else SUMMARY_COLUMNS
        filesystem, root = self.open()
        final = f"{root}/{kind}/{key}.{self.fmt}"
        tmp = f"{root}/{kind}/{TMP_PREFIX}{uuid.uuid4().hex[:8]}-{key}.{self.fmt}"
        try:
            if self.fmt == "parquet":
                import pyarrow.parquet as pq

                pq.write_table(_table(records, columns, kind), tmp, filesystem=filesystem)
            else:
                with filesystem.open_output_stream(tmp) as f:
                    f.write(_csv_bytes(records, columns))
            filesystem.move(tmp, final)
        except OSError as e:
            raise SinkError(f"{final}: cannot write ({_reason(e)})") from e
        return final

    def read(self, kind: str) -> list[dict[str, Any]]:
        """Every record of OUT/<kind> (e.g. all summaries) as dicts; for tests and reports."""
        import pyarrow.dataset as ds

        filesystem, root = self.open()
        fmt = ds.CsvFileFormat() if self.fmt == "csv" else "parquet"
        dataset = ds.dataset(f"{root}/{kind}", filesystem=filesystem, format=fmt,
                             exclude_invalid_files=False,
                             ignore_prefixes=[TMP_PREFIX, "."])
        return list(dataset.to_table().to_pylist())


def _table(records: Sequence[dict[str, Any]], columns: Iterable[str], kind: str) -> Any:
    import pyarrow as pa

    ints = _ROW_INTS if kind == "rows" else _SUMMARY_INTS
    strings = _ROW_STRINGS if kind == "rows" else _SUMMARY_STRINGS
    fields = [pa.field(c, pa.string() if c in strings or _any_text(records, c)
                       else pa.int64() if c in ints else pa.float64()) for c in columns]
    schema = pa.schema(fields)
    return pa.Table.from_pylist([{c: r.get(c) for c in schema.names} for r in records],
                                schema=schema)


def _any_text(records: Sequence[dict[str, Any]], column: str) -> bool:
    return any(isinstance(r.get(column), str) for r in records)


def _csv_bytes(records: Sequence[dict[str, Any]], columns: Sequence[str]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for r in records:
        writer.writerow(["" if r.get(c) is None else r.get(c) for c in columns])
    return buffer.getvalue().encode("utf-8")


def _reason(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[-1] if text else error.__class__.__name__
