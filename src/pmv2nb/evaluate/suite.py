"""Run a set of models and baselines over modes and context sizes in one call (what notebook 02 does).

Every run goes through :func:`run_eval`, so the whole suite shares one call cache and one results
folder: running the suite again only does what is missing.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd

from ..backends import Sampling
from ..config import Profile, protocol_tag
from ..data.loader import PersonaMemData
from .cache import CallCache
from .results import read_results
from .runner import EvalRun, RunSettings, estimate, run_eval
from .tasks import trained_format

HEURISTIC_BASELINES = ("baseline:random", "baseline:longest", "baseline:shortest", "baseline:bm25", "baseline:dense")


def baseline_specs(model: str) -> list[str]:
    """The answer-only baselines plus ``model`` without the history, with only the evidence and with retrieved
    windows of the history (the authors' RAG baseline)."""
    return [*HEURISTIC_BASELINES, f"nohistory:{model}", f"oracle:{model}", f"rag:{model}"]


def answer_tokens(profile: Profile, mode: str) -> int:
    """The reply cap for a mode: multiple-choice rows may have a shorter one than open-ended rows."""
    if mode == "mcq" and profile.eval.mcq_max_new_tokens:
        return profile.eval.mcq_max_new_tokens
    return profile.eval.max_new_tokens


def profile_settings(profile: Profile, mode: str, size: str, prompt_format: str | None = None,
                     mcq_rows: int | None = None, results_dir: str | Path | None = None) -> RunSettings:
    """Run settings for one mode and size from the profile: its ``eval`` and ``train_prompt`` sections as they
    are, plus what this run derives from them (row count, sampling, option orders, protocol tag, folder).

    The one place a run's settings come from: notebooks, ``pmv2nb eval`` and ``pmv2nb memory run`` all
    call it on a profile resolved with their overrides. ``mcq_rows`` narrows a multiple-choice run (a side
    comparison, an ablation); None keeps ``eval.mcq_rows``. ``results_dir`` (None: the profile's ``eval_dir``)
    is where its files go. ``prompt_format`` None lets each model be asked in the format it was trained on (see
    :func:`~pmv2nb.evaluate.tasks.resolve_format`).
    """
    if mode == "mcq":
        rows = mcq_rows if mcq_rows is not None else profile.eval.mcq_rows
    else:
        rows = profile.eval.open_rows
    sampling = Sampling(max_tokens=answer_tokens(profile, mode), temperature=profile.eval.temperature,
                        seed=profile.seed)
    return RunSettings(mode=mode, size=size, rows=rows, variants=profile.eval.orders if mode == "mcq" else 1,
                       sampling=sampling, judge_sampling=replace(sampling, max_tokens=profile.eval.max_new_tokens),
                       prompt_format=prompt_format, profile=profile.name, protocol=protocol_tag(profile),
                       dtype=profile.model.dtype, results_dir=Path(results_dir or profile.eval_dir()),
                       eval=profile.eval, train_prompt=profile.train_prompt)


def plan(data: PersonaMemData, profile: Profile, models: list[str], judge: str | None,
         modes: tuple[str, ...] = ("mcq", "open"), sizes: tuple[str, ...] | None = None) -> pd.DataFrame:
    """Estimated calls, tokens and dollars for every (model, mode, size), before anything runs."""
    rows = []
    for model in models:
        for size in sizes or profile.eval.sizes:
            for mode in modes:
                rows.append(estimate(data, model, profile_settings(profile, mode, size), judge))
    return pd.DataFrame(rows)


def run_suite(data: PersonaMemData, profile: Profile, models: list[str], judge: str | None = None,
              modes: tuple[str, ...] = ("mcq", "open"), sizes: tuple[str, ...] | None = None,
              results_dir: str | Path | None = None, cache: str | Path | None = None,
              budget_usd: float | None = None, progress: bool = True, prompt_format: str | None = None,
              mcq_rows: int | None = None, **overrides) -> tuple[pd.DataFrame, list[EvalRun]]:
    """Run every (model, size, mode); returns all result rows together and the individual runs.

    Results go to ``results_dir`` (default: the profile's ``eval_dir``), calls through ``cache`` (default: the
    profile's ``cache_path``). ``mcq_rows`` narrows the multiple-choice runs (None: ``eval.mcq_rows``);
    ``overrides`` replace fields of each run's settings (for example ``variants=4``).
    """
    store = CallCache(cache or profile.cache_path())
    runs, left = [], budget_usd
    try:
        for model in models:
            for size in sizes or profile.eval.sizes:
                for mode in modes:
                    settings = replace(profile_settings(profile, mode, size, prompt_format, mcq_rows, results_dir),
                                       budget_usd=left, **overrides)
                    run = run_eval(data, model, settings, judge=judge if mode == "open" else None, cache=store,
                                   progress=progress)
                    runs.append(run)
                    if left is not None:
                        left -= run.spent_usd
                    if run.stopped:
                        return _combined(runs), runs
    finally:
        store.close()
    return _combined(runs), runs


def shared_format(specs: list[str]) -> str | None:
    """The one format the trained checkpoints among ``specs`` learned (None when none is a trained run).

    A comparison asks every model, base included, in that format, so it measures training and not a
    change of wording; checkpoints trained on different formats cannot be compared that way.
    """
    learned = {found for found in map(trained_format, specs) if found}
    if len(learned) > 1:
        raise ValueError(f"these checkpoints were trained on different prompt formats ({sorted(learned)}); "
                         f"pass prompt_format to compare them in one")
    return learned.pop() if learned else None


def compare_checkpoints(data: PersonaMemData, profile: Profile, checkpoints: dict[str, str], judge: str | None,
                        results_dir: str | Path | None = None, cache: str | Path | None = None,
                        prompt_format: str | None = None, modes: tuple[str, ...] = ("mcq", "open"),
                        mcq_rows: int | None = None, **overrides) -> pd.DataFrame:
    """Overall MCQ and open-ended accuracy (95% CI) for labelled model specs, e.g. {"SFT": "hf:runs/sft"}, at 32k.

    Every model is asked in one prompt format: ``prompt_format``, else the one the trained checkpoints
    learned (see :func:`shared_format`), so a base model is measured the way its fine-tuned version is.
    ``mcq_rows`` narrows the multiple-choice rows only (None: ``eval.mcq_rows``; open-ended rows stay the
    profile's); ``overrides`` go to :func:`run_suite`.
    """
    from .breakdown import breakdown

    prompt_format = prompt_format or shared_format(list(checkpoints.values()))
    results, _ = run_suite(data, profile, list(checkpoints.values()), judge, modes=modes, sizes=("32k",),
                           results_dir=results_dir, cache=cache, prompt_format=prompt_format, mcq_rows=mcq_rows,
                           **overrides)
    table = breakdown(results, "overall")
    table["checkpoint"] = table["model"].map({spec: label for label, spec in checkpoints.items()})
    table["prompt_format"] = prompt_format or "chat"
    return table[["checkpoint", "mode", "prompt_format", "n", "accuracy", "ci_low", "ci_high", "invalid_rate",
                  "cut_rate"]]


def _combined(runs: list[EvalRun]) -> pd.DataFrame:
    frames = [read_results(run.path) for run in runs if run.path.exists()]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def calls_summary(runs: list[EvalRun]) -> pd.DataFrame:
    """Per run: rows, new model and judge calls, dollars spent (zero new calls means all came from the cache)."""
    return pd.DataFrame([{"model": r.results["model"].iat[0] if len(r.results) else "", "file": r.path.name,
                          "rows": len(r.results), "new_calls": r.new_calls, "new_judge_calls": r.new_judge_calls,
                          "spent_usd": round(r.spent_usd, 4)} for r in runs])
