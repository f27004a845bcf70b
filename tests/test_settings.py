import pytest

from hasten import Backoff, ConfigurationError, Settings


def test_backoff_grows_exponentially_and_caps() -> None:
    backoff = Backoff(base=1, factor=2, max=5, jitter=0)
    assert [backoff.delay(n) for n in range(1, 6)] == [1, 2, 4, 5, 5]


def test_backoff_jitter_stays_within_its_fraction() -> None:
    backoff = Backoff(base=10, factor=1, jitter=0.5)
    delays = [backoff.delay(1) for _ in range(200)]
    assert all(5 <= d <= 10 for d in delays)
    assert len(set(delays)) > 1


@pytest.mark.parametrize("kwargs", [{"factor": 0.5}, {"jitter": 2}, {"base": -1}])
def test_backoff_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigurationError):
        Backoff(**kwargs)


def test_pickle_requires_a_signing_key() -> None:
    with pytest.raises(ConfigurationError, match="signing_key"):
        Settings(serializer="pickle")
    assert Settings(serializer="pickle", signing_key=b"k").serializer == "pickle"


def test_from_env_reads_hasten_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HASTEN_REDIS_URL", "redis://example:6380/3")
    monkeypatch.setenv("HASTEN_TIMEOUT", "1.5")
    monkeypatch.setenv("HASTEN_SIGNING_KEY", "secret")
    settings = Settings.from_env(connect_timeout=0.5)
    assert settings.redis_url == "redis://example:6380/3"
    assert settings.timeout == 1.5
    assert settings.connect_timeout == 0.5
    assert settings.signing_key == b"secret"


def test_signing_key_is_not_in_repr() -> None:
    assert "secret" not in repr(Settings(signing_key=b"secret"))
