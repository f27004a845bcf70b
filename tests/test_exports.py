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
    import sys

    assert "fastapi" not in sys.modules or "hasten.fastapi" not in sys.modules
    assert "hasten.cli" not in sys.modules or hasattr(sys.modules["hasten.cli"], "app")
