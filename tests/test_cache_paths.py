"""Where a call cache opened without a path lives."""

from pmv2nb import config
from pmv2nb.evaluate.cache import default_cache_path


def test_a_cache_opened_without_a_path_is_the_shipped_profiles_whatever_the_environment_names(monkeypatch):
    monkeypatch.setenv(config.PROFILE_ENV, "tiny")
    shipped = config.shipped_profile()
    assert shipped.name == config.DEFAULT_PROFILE
    assert default_cache_path() == shipped.cache_path() == config.repo_root() / "results" / "cache" / "calls.sqlite"
