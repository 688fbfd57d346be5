"""Every livesqa module imports without torch (the runtime must never need it)."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_every_module_imports_with_torch_blocked():
    code = textwrap.dedent("""
        import importlib, pkgutil, sys
        sys.modules["torch"] = None  # any `import torch` now raises ImportError
        sys.modules["train"] = None
        import livesqa
        failed = []
        names = [m.name for m in pkgutil.walk_packages(livesqa.__path__, "livesqa.")]
        for name in names:
            try:
                importlib.import_module(name)
            except ImportError as e:
                if "torch" in str(e) or "train" in str(e):
                    failed.append(f"{name}: {e}")
        assert "livesqa.cli" in names and "livesqa.monitor" in names, names
        print("\\n".join(failed))
        sys.exit(1 if failed else 0)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
