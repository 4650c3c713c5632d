"""The results shelf: the paper's numbers and your own runs, as the frames the paper figures draw.

Paper values come from ``results/paper`` (see :mod:`pmv2nb.paper_numbers`). Your runs are every
result file in the profile's evaluation folder (``profile.eval_dir()``) and every training log under its
``runs_dir``. Each model spec found there gets a role: a frontier-style model (Figure 4 and 5), a member
of the Qwen3 family (Figure 6, recognised from the ``run.json`` of its checkpoint), a baseline or a
context ablation (left to notebook 02). Every number of yours carries the profile, the data and the row
count it came from, so a tiny-profile run on the synthetic mini data is never mistaken for a paper-scale
result.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from . import paper_numbers
from .config import Profile, repo_root
from .evaluate.breakdown import breakdown
from .evaluate.results import read_results
from .evaluate.tasks import display_name, split_context
from .models import read_run_record
from .paper_figures import plot_breakdown, plot_family, plot_frontier
from .plots import CURVE_COLUMNS, STAGE_METRICS, metric_curves, plot_dataset_overview, plot_training_runs, save_figure

FIGURE_NAMES = {"dataset": "06_fig2_dataset", "frontier": "06_fig4_frontier", "breakdown": "06_fig5_breakdown",
                "family": "06_fig6_qwen3_4b_family", "training": "06_training_curves"}
FRONTIER, BASELINE, OTHER = "frontier", "baseline", "other"
BASE = "Qwen3-4B base"
RESULT_COLUMNS = ("question_id", "model", "mode", "size", "valid", "score")


def _run_folder(path_text: str, runs_dir: Path) -> Path | None:
    """The training run a local model spec points at, if it has a run.json."""
    path = Path(path_text).expanduser()
    candidates = [path] if path.is_absolute() else [Path.cwd() / path, repo_root() / path, runs_dir / path.name]
    return next((c for c in candidates if (c / "run.json").is_file()), None)


def classify(spec: str, runs_dir: Path, base_models: tuple[str, ...] = ()) -> tuple[str, str | None, int]:
    """(role, family member, preference) for one model spec; a higher preference wins among equals.

    Checkpoints are recognised by their run.json: SFT, GRPO by its MCQ fraction, the memory RL run.
    The memory agent is any ``memory:`` spec, preferring RL-trained checkpoints.
    """
    context, backend = split_context(spec)
    engine, _, name = backend.partition(":")
    if engine == "baseline":
        return BASELINE, None, 0
    if context in ("none", "oracle", "rag"):
        return OTHER, None, 0
    folder = _run_folder(name, runs_dir) if engine in ("hf", "vllm") else None
    run = read_run_record(folder) if folder else {}
    stage = run.get("stage")
    if context in ("memory", "memory+query"):
        return "family", "Agentic memory", (2 if stage == "memory-grpo" else 0) + (context == "memory")
    if stage == "sft":
        return "family", "Qwen3-4B-SFT", 1
    if stage == "grpo":
        fraction = run.get("settings", {}).get("mcq_fraction", 0.8)
        member = {1.0: "GRPO MCQ-only", 0.0: "GRPO open-only"}.get(float(fraction), "Qwen3-4B-GRPO")
        return "family", member, 1
    if stage:
        return OTHER, None, 0
    if engine in ("hf", "vllm") and name in base_models:
        return "family", BASE, 1
    return FRONTIER, None, 0


def _provenance(rows: pd.DataFrame) -> str:
    def known(column: str, fallback: str) -> str:
        values = rows[column].dropna().astype(str).unique() if column in rows else []
        return "/".join(sorted(values)) if len(values) else fallback

    # rows from before protocols existed followed what is now the paper protocol
    return (f"{known('profile', 'profile not recorded')}, {known('data_source', 'data not recorded')}, "
            f"{known('protocol', 'paper')} protocol")


def _described(spec: str, rows: pd.DataFrame) -> dict[str, str]:
    """A short plot label for one of your models, and where its numbers came from (profile, data, questions)."""
    counts = sorted({int(n) for n in rows.groupby("mode")["question_id"].nunique()})
    return {"label": f"yours: {display_name(spec)}",
            "provenance": f"{_provenance(rows)}, n={'/'.join(map(str, counts))}"}


def _percent(table: pd.DataFrame) -> pd.DataFrame:
    table = table.copy()
    table[["accuracy", "ci_low", "ci_high"]] *= 100
    return table


@dataclass
class Shelf:
    """Everything the paper figures need: reference tables, your result rows and your training runs."""

    results: pd.DataFrame
    runs: dict[str, dict] = field(default_factory=dict)
    paper_folder: Path | None = None

    @classmethod
    def load(cls, results_dir: str | Path, runs_dir: str | Path, base_models: tuple[str, ...] = (),
             paper_folder: str | Path | None = None) -> "Shelf":
        """Read every ``*.jsonl`` in ``results_dir`` and every run under ``runs_dir``.

        Both folders are required: :meth:`for_profile` is the way to the profile's own.
        """
        results_dir, runs_dir = Path(results_dir), Path(runs_dir)
        files = sorted(results_dir.glob("*.jsonl")) if results_dir.is_dir() else []
        frames = []
        for path in files:
            rows = read_results(path)
            missing = [c for c in RESULT_COLUMNS if c not in rows] if len(rows) else []
            if missing:
                raise ValueError(f"{path}: not a pmv2nb result file (no column {', '.join(missing)}); "
                                 f"move it out of {results_dir}")
            if len(rows):
                frames.append(rows.assign(file=path.name))
        results = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["model", "mode", "file"])
        roles = {spec: classify(spec, runs_dir, base_models) for spec in results["model"].unique()}
        results["role"] = results["model"].map(lambda spec: roles[spec][0])
        results["member"] = results["model"].map(lambda spec: roles[spec][1])
        results["preference"] = results["model"].map(lambda spec: roles[spec][2])
        runs = {}
        for run_json in sorted(runs_dir.glob("*/run.json")) if runs_dir.is_dir() else []:
            runs[run_json.parent.name] = {**read_run_record(run_json.parent), "path": str(run_json.parent)}
        return cls(results, runs, Path(paper_folder) if paper_folder else None)

    @classmethod
    def for_profile(cls, profile: Profile, results_dir: str | Path | None = None,
                    runs_dir: str | Path | None = None) -> "Shelf":
        """The shelf with the profile's folders (``eval_dir()``, ``runs_dir``) unless others are given; its model (by
        name or, when built in, its saved folder) is the base."""
        from .models import builtin_model_folder

        base = (profile.model.name,)
        folder = builtin_model_folder(profile.model.name, profile)
        if folder is not None:
            base += (str(folder),)
        return cls.load(results_dir or profile.eval_dir(), runs_dir or profile.path("runs"), base_models=base)

    # ---- what was found -------------------------------------------------------------------------------------
    def inventory(self) -> pd.DataFrame:
        """One line per model spec of yours: its role, the family member it stands for, provenance and rows."""
        if not len(self.results):
            return pd.DataFrame(columns=["model", "role", "member", "provenance", "modes", "rows", "files"])
        lines = []
        for spec, rows in self.results.groupby("model", sort=True):
            lines.append({"model": spec, "role": rows["role"].iat[0], "member": rows["member"].iat[0],
                          "provenance": _provenance(rows), "modes": ", ".join(sorted(rows["mode"].unique())),
                          "rows": len(rows), "files": ", ".join(sorted(rows["file"].unique()))})
        return pd.DataFrame(lines)

    def _rows(self, role: str) -> pd.DataFrame:
        if not len(self.results):
            return self.results
        chosen = self.results["role"] == role
        if role == FRONTIER:  # the base model is benchmarked like any frontier model, so it counts there too
            chosen |= self.results["member"] == BASE
        return self.results[chosen]

    # ---- frames the figures draw ----------------------------------------------------------------------------
    def frontier_overlay(self) -> pd.DataFrame:
        """Your full-history models (frontier-style and the base): label, size, mode, accuracy and 95% CI in %."""
        rows = self._rows(FRONTIER)
        if not len(rows):
            return pd.DataFrame(columns=["label", "provenance", "model", "size", "mode", "accuracy", "ci_low",
                                         "ci_high", "n"])
        table = _percent(breakdown(rows, "overall"))
        described = {spec: _described(spec, part) for spec, part in rows.groupby("model")}
        for key in ("label", "provenance"):
            table[key] = table["model"].map(lambda spec: described[spec][key])
        return table[["label", "provenance", "model", "size", "mode", "accuracy", "ci_low", "ci_high", "n"]]

    def breakdown_overlay(self) -> pd.DataFrame:
        """Per paper category: mean and sd (%) of accuracy across your full-history (model, size, mode) runs."""
        rows = self._rows(FRONTIER)
        out = []
        for ref in paper_numbers.reference_table("figure5_breakdown", self.paper_folder).itertuples():
            if not len(rows) or ref.data_column not in rows:
                continue
            part = rows[rows[ref.data_column].astype(str) == ref.data_value]
            if not len(part):
                continue
            per_run = part.groupby(["model", "size", "mode"])["score"].mean() * 100
            out.append({"panel": ref.panel, "category": ref.category, "mean": per_run.mean(),
                        "sd": per_run.std(ddof=1) if len(per_run) > 1 else math.nan, "runs": len(per_run),
                        "questions": part["question_id"].nunique()})
        return pd.DataFrame(out, columns=["panel", "category", "mean", "sd", "runs", "questions"])

    def _family_choice(self) -> dict[str, str]:
        """Family member -> the one spec of yours drawn for it (most preferred, then most rows)."""
        rows = self._rows("family")
        chosen = {}
        for member, part in rows.groupby("member"):
            ranked = part.groupby("model").agg(preference=("preference", "max"), rows=("question_id", "size"))
            ranked["shorter"] = -ranked.index.str.len()  # among equals, the plainest spec (hf:tiny over its folder)
            chosen[member] = ranked.sort_values(["preference", "rows", "shorter"], ascending=False).index[0]
        return chosen

    def family_overlay(self) -> pd.DataFrame:
        """Your Qwen3 family at 32k: model (member), mode, accuracy and 95% CI in %, label and provenance."""
        columns = ["model", "spec", "mode", "accuracy", "ci_low", "ci_high", "n", "label", "provenance"]
        pieces = []
        for member, spec in self._family_choice().items():
            rows = self.results[(self.results["model"] == spec) & (self.results["size"] == "32k")]
            if not len(rows):
                continue
            table = _percent(breakdown(rows, "overall"))
            pieces.append(table.assign(spec=spec, model=member, **_described(spec, rows)))
        return pd.concat(pieces, ignore_index=True)[columns] if pieces else pd.DataFrame(columns=columns)

    def answer_tokens(self) -> pd.DataFrame:
        """Your memory agent's mean input tokens per answer, beside the full history the same questions have."""
        spec = self._family_choice().get("Agentic memory")
        if spec is None:
            return pd.DataFrame(columns=["setting", "tokens", "label"])
        rows = self.results[self.results["model"] == spec]
        lines = [{"setting": "memory", "tokens": rows["tokens_in"].mean(), "label": display_name(spec)}]
        if "full_history_tokens" in rows and rows["full_history_tokens"].notna().any():
            lines.insert(0, {"setting": "long context", "tokens": rows["full_history_tokens"].mean(),
                             "label": "same questions, whole history"})
        return pd.DataFrame(lines)

    def training_curves(self) -> pd.DataFrame:
        """Long frame (title, metric, step, value) of the headline metrics of every run with a metrics.csv."""
        pieces = []
        stages = list(STAGE_METRICS)
        ordered = sorted(self.runs.items(), key=lambda item: (stages.index(item[1]["stage"])
                                                              if item[1].get("stage") in stages else len(stages),
                                                              item[0]))
        for name, run in ordered:
            metrics_path = Path(run["path"]) / "metrics.csv"
            wanted = STAGE_METRICS.get(run.get("stage", ""), {})
            if not metrics_path.is_file() or not wanted:
                continue
            title = f"{name} ({run['stage']}, profile {run.get('profile', '?')})"
            pieces.append(metric_curves(pd.read_csv(metrics_path), wanted, title))
        pieces = [piece for piece in pieces if len(piece)]
        return pd.concat(pieces, ignore_index=True) if pieces else pd.DataFrame(columns=CURVE_COLUMNS)

    # ---- the figures ----------------------------------------------------------------------------------------
    def figure4(self):
        ranges = paper_numbers.reference_table("headline_ranges", self.paper_folder).iloc[:1]
        return plot_frontier(paper_numbers.reference_table("figure4_frontier", self.paper_folder),
                             self.frontier_overlay(), ranges)

    def figure5(self):
        return plot_breakdown(paper_numbers.reference_table("figure5_breakdown", self.paper_folder),
                              self.breakdown_overlay())

    def figure6(self):
        efficiency = paper_numbers.reference_table("efficiency", self.paper_folder)
        return plot_family(paper_numbers.family_reference(self.paper_folder), self.family_overlay(),
                           efficiency, self.answer_tokens())

    def training_figure(self):
        """The curves of every training run found, or None when there is none yet."""
        curves = self.training_curves()
        return plot_training_runs(curves) if len(curves) else None


def draw_all(profile: Profile, out_dir: str | Path | None = None, shelf: Shelf | None = None,
             with_dataset: bool = True) -> dict[str, list[Path]]:
    """Redraw every paper figure with your runs beside it and save each as PNG and PDF; returns the files."""
    import matplotlib.pyplot as plt

    out = Path(out_dir) if out_dir else profile.path("figures")
    shelf = shelf or Shelf.for_profile(profile)
    makers = {"frontier": shelf.figure4, "breakdown": shelf.figure5, "family": shelf.figure6,
              "training": shelf.training_figure}
    if with_dataset:
        from .data import load_profile_split

        makers = {"dataset": lambda: plot_dataset_overview(load_profile_split(profile).questions), **makers}
    saved = {}
    for key, make in makers.items():
        fig = make()
        if fig is None:
            continue
        saved[FIGURE_NAMES[key]] = save_figure(fig, FIGURE_NAMES[key], out)
        plt.close(fig)
    return saved
