"""Notebook 06 and `pmv2nb figures` read and write the profile's folders: a user who moves them plots what they ran."""

import inspect

from pmv2nb import config


def _write_result(path, model):
    from pmv2nb.evaluate.results import ResultsFile

    with ResultsFile(path) as rows:
        rows.append({"question_id": "q0", "model": model, "mode": "mcq", "size": "32k", "variant": 0,
                     "profile": "tiny", "data_source": "mini (synthetic)", "who": "self",
                     "pref_type": "neutral_preferences", "updated": False, "valid": True, "score": 1.0,
                     "tokens_in": 10})


def test_the_shelf_reads_the_profiles_eval_folder_and_draws_into_its_figures_folder(tmp_path):
    from pmv2nb.shelf import FIGURE_NAMES, Shelf, draw_all

    profile = config.resolve("tiny", {"results_dir": str(tmp_path / "results"), "runs_dir": str(tmp_path / "runs"),
                                      "figures_dir": str(tmp_path / "figures")})
    _write_result(profile.eval_dir() / "mine.jsonl", "openai:mine")
    _write_result(tmp_path / "results" / "elsewhere.jsonl", "openai:not-an-eval-file")  # beside eval/, not in it
    shelf = Shelf.for_profile(profile)
    assert list(shelf.inventory()["model"]) == ["openai:mine"]
    saved = draw_all(profile, shelf=shelf, with_dataset=False)
    assert saved[FIGURE_NAMES["frontier"]][0] == tmp_path / "figures" / f"{FIGURE_NAMES['frontier']}.png"
    assert all(path.is_file() for paths in saved.values() for path in paths)


def test_no_figure_or_shelf_default_hides_a_fixed_folder():
    from pmv2nb.plots import save_figure
    from pmv2nb.shelf import Shelf

    # a default here would write or read the repository's folders whatever the profile says
    assert inspect.signature(save_figure).parameters["out_dir"].default is inspect.Parameter.empty
    load = inspect.signature(Shelf.load).parameters
    assert load["results_dir"].default is load["runs_dir"].default is inspect.Parameter.empty
