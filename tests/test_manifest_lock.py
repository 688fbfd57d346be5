"""Appending rows while another writer rewrites the manifest must lose none of them."""

from __future__ import annotations

import csv
import os
import threading
from pathlib import Path

from train.manifest_lock import manifest_locked


def _append(path: Path, n: int) -> None:
    for i in range(n):
        with manifest_locked(path), path.open("a", newline="") as f:
            csv.writer(f).writerow([f"a{i}", ""])


def _rewrite(path: Path, n: int) -> None:
    for _ in range(n):
        with manifest_locked(path):
            with path.open(newline="") as f:
                rows = list(csv.reader(f))
            tmp = path.with_suffix(".tmp")
            with tmp.open("w", newline="") as f:
                csv.writer(f).writerows([r if r[0] == "id" else [r[0], "labelled"] for r in rows])
            os.replace(tmp, path)


def test_concurrent_append_and_replace_keep_every_row(tmp_path: Path) -> None:
    path = tmp_path / "manifest.csv"
    path.write_text("id,label\r\n")
    writer = threading.Thread(target=_append, args=(path, 400))
    labeller = threading.Thread(target=_rewrite, args=(path, 200))
    writer.start()
    labeller.start()
    writer.join()
    labeller.join()
    with path.open(newline="") as f:
        ids = [r[0] for r in csv.reader(f)][1:]
    assert sorted(ids) == sorted(f"a{i}" for i in range(400))
