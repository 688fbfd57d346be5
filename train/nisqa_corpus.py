"""The real NISQA corpus as a livesqa quality manifest (`python -m train.nisqa_corpus`).

Why: training on human labels should be the same `finetune` command as training on the
simulated corpus, only with another manifest. The NISQA corpus ships one CSV,
``NISQA_corpus_file.csv``, with a row per file (``db``, ``con``, ``filepath_deg`` relative
to the corpus folder, ``mos`` and, for most databases, ``noi``, ``col``, ``dis``,
``loud``) and one folder per database (``NISQA_TRAIN_SIM``, ``NISQA_VAL_LIVE``,
``NISQA_TEST_FOR``, ...). This module maps it to the rows of ``cache/sim/manifest.csv``
(:data:`train.simulate.MANIFEST_COLUMNS`): absolute ``filepath_deg``, split from the
database name (TRAIN/VAL/TEST), missing dimensions left empty (masked in the loss), and
``teacher = human``.
"""

from __future__ import annotations

import argparse
import csv
from collections.abc import Sequence
from pathlib import Path

from livesqa.errors import ConfigError
from livesqa.spec import DIMENSIONS
from train.asr_data import duration_s
from train.manifest_lock import write_csv_atomic
from train.simulate import MANIFEST_COLUMNS

CORPUS_CSV = "NISQA_corpus_file.csv"
REQUIRED_COLUMNS = ("db", "filepath_deg", "mos")


def split_of_db(db: str) -> str:
    """NISQA database name -> train/val/test (``NISQA_TRAIN_SIM`` -> train)."""
    name = db.upper()
    for token, split in (("_TRAIN", "train"), ("_VAL", "val"), ("_TEST", "test")):
        if token in name:
            return split
    raise ConfigError(f"cannot tell the split of NISQA database {db!r} (no TRAIN/VAL/TEST in its name)")


def _score(value: str | None) -> str:
    """A rating as text, or empty when missing/NaN (pandas writes NaN for absent dimensions)."""
    if value is None or value.strip() == "" or value.strip().lower() == "nan":
        return ""
    try:
        return f"{float(value):.4f}"
    except ValueError as e:
        raise ConfigError(f"rating {value!r} is not a number") from e


def corpus_rows(corpus_dir: str | Path, csv_name: str = CORPUS_CSV,
                dbs: Sequence[str] = (), check_files: bool = True) -> list[dict[str, str]]:
    """Manifest rows for the corpus (optionally only databases ``dbs``), in CSV order."""
    root = Path(corpus_dir).resolve()
    csv_path = root / csv_name
    if not csv_path.is_file():
        raise ConfigError(f"NISQA corpus CSV not found: {csv_path}")
    with csv_path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ConfigError(f"{csv_path}: lacks columns {missing}")
        source_rows = list(reader)
    rows = []
    for src in source_rows:
        if dbs and src["db"] not in dbs:
            continue
        path = root / src["filepath_deg"]
        if check_files and not path.is_file():
            raise ConfigError(f"{csv_path}: listed file missing: {path}")
        row = {c: "" for c in MANIFEST_COLUMNS}
        row.update({
            "db": src["db"], "con": src.get("con", ""), "filepath_deg": str(path),
            "filename_deg": src.get("filename_deg") or path.name, "source": src.get("source", ""),
            "split": split_of_db(src["db"]), "condition": src.get("con_description", ""),
            "teacher": "human",
        })
        if check_files:
            row["duration_s"] = f"{duration_s(path):.3f}"
        for dim in DIMENSIONS:
            row[dim] = _score(src.get(dim))
        if not row["mos"]:
            continue  # a row without an overall rating carries no target we train on
        rows.append(row)
    return rows


def write_manifest(rows: Sequence[dict[str, str]], out: str | Path) -> Path:
    """Write rows in the simulated corpus layout, atomically."""
    path = Path(out)
    write_csv_atomic(path, MANIFEST_COLUMNS, rows)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train.nisqa_corpus", description=__doc__.split("\n")[0])
    parser.add_argument("--corpus-dir", required=True, help="folder holding NISQA_corpus_file.csv")
    parser.add_argument("--csv", default=CORPUS_CSV)
    parser.add_argument("--db", action="append", default=[], help="only these databases (repeatable)")
    parser.add_argument("--out", default="cache/nisqa/manifest.csv")
    args = parser.parse_args(argv)
    rows = corpus_rows(args.corpus_dir, args.csv, args.db)
    write_manifest(rows, args.out)
    by_split = {s: sum(r["split"] == s for r in rows) for s in ("train", "val", "test")}
    print(f"wrote {args.out}: {len(rows)} files {by_split}; train with "
          f"`python -m train finetune --set finetune.manifest={args.out}`")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
