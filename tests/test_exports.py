import subprocess
import sys

import hasten


def test_all_is_sorted_and_importable() -> None:
    assert hasten.__all__ == sorted(hasten.__all__, key=str.casefold)
    for name in hasten.__all__:
        assert hasattr(hasten, name), name


def test_public_names() -> None:
    assert {"Queue", "Worker", "Job", "JobStatus", "Retry", "Backoff", "Settings", "HastenError"} <= set(
        hasten.__all__
    )


def test_import_pulls_no_optional_integration() -> None:
    optional = ("fastapi", "hasten.fastapi", "typer")
    code = f"import sys, hasten; print(sorted(m for m in {optional} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
