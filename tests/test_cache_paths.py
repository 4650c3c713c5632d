"""The call cache sits where the profile's results go, so moving the results moves the cache with them."""

from pmv2nb import config
from pmv2nb.evaluate.cache import default_cache_path, opened_cache


def test_the_default_cache_follows_the_profiles_results_folder(tmp_path):
    moved = config.resolve("tiny", {"results_dir": str(tmp_path / "results")})
    assert default_cache_path(moved) == moved.cache_path() == tmp_path / "results" / "cache" / "calls.sqlite"
    # without a profile: the default profile's folder, whatever $PMV2NB_PROFILE names
    shipped = config.PROFILES[config.DEFAULT_PROFILE]()
    assert default_cache_path() == shipped.cache_path() == config.repo_root() / "results" / "cache" / "calls.sqlite"


def test_an_opened_cache_is_made_where_it_is_asked(tmp_path):
    with opened_cache(default_cache_path(config.resolve("tiny", {"results_dir": str(tmp_path)}))) as store:
        assert store.path == tmp_path / "cache" / "calls.sqlite" and store.path.is_file()
