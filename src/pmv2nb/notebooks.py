"""The notebooks' own helpers: one setup call, values a test can read back, and the headless runner.

:func:`start` is the first code cell of every numbered notebook: it resolves the profile from the
parameters cell (``PROFILE``, ``CONFIG``, ``SETTINGS``, the same overrides the CLI takes), checks
for a GPU where the stage needs one, names the judge, and shows the stage's resolved settings.
:func:`record` puts a computed value into the executed notebook's outputs, where tests read it with
:func:`read_records` (the scrapbook idea, without a new dependency).

:func:`run_all` executes every notebook in a fresh kernel through papermill with its ``parameters``
cell overridden, and the executed copy lands in a git-ignored folder; the committed notebooks stay
free of outputs. A failing cell stops the run with the notebook's name.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from . import config
from .config import PROFILE_ENV, Profile, repo_root

RECORD_MIME = "application/vnd.pmv2nb.record+json"

# Which profile sections a stage's settings table shows, and what the GPU check calls the stage.
STAGES = {
    "data": (("data",), None),
    "benchmark": (("model", "eval"), None),
    "sft": (("model", "sft"), "SFT"),
    "grpo": (("model", "grpo"), "GRPO"),
    "memory": (("model", "memory"), "the memory agent"),
    "figures": (("data", "model"), None),
}


@dataclass
class NotebookSession:
    """What a notebook's setup cell hands on: the resolved profile, its evaluation judge, split loader and figure
    saver. Folders come from the profile (``profile.eval_dir()``, ``cache_path()``, ``path("runs")``), so a
    notebook moves them with ``SETTINGS`` only."""

    profile: Profile
    stage: str
    _splits: dict = field(default_factory=dict, repr=False)

    @property
    def judge(self) -> str | None:
        """The open-ended judge of every evaluation (``eval.judge``)."""
        return self.profile.eval.judge

    def split(self, name: str = "benchmark"):
        """A split of the profile's data, loaded once per session."""
        from .data import load_profile_split

        if name not in self._splits:
            self._splits[name] = load_profile_split(self.profile, name)
        return self._splits[name]

    def save_figure(self, fig, name: str) -> None:
        """Save ``fig`` as PNG and PDF in the profile's figures folder (``figures_dir``).

        Returns nothing, so a cell ending with it shows the figure alone, not also the list of saved files.
        """
        from .plots import save_figure

        save_figure(fig, name, self.profile.path("figures"))

    def settings(self, *sections: str):
        """The resolved settings of ``sections`` (default: the stage's) as a table of key, value and help."""
        import pandas as pd

        prefixes = tuple(f"{s}." for s in (sections or STAGES[self.stage][0]))
        rows = [row for row in config.setting_keys(self.profile) if row["key"].startswith(prefixes)]
        return pd.DataFrame(rows).set_index("key")


def start(stage: str, profile: str | None = None, settings: Mapping[str, Any] | None = None,
          config_file: str | None = None, show: bool = True) -> NotebookSession:
    """Resolve the profile with the notebook's overrides, stop early without a needed GPU, and show the settings."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; one of {', '.join(STAGES)}")
    resolved = config.resolve(profile, settings, config_file)
    purpose = STAGES[stage][1]
    if purpose:
        from .models import require_gpu

        require_gpu(resolved, purpose)  # stops here, with what to do instead, when the profile needs a missing GPU
    from .models import quiet_model_loading

    quiet_model_loading()
    session = NotebookSession(resolved, stage)
    if show:
        from IPython.display import display

        print(f"profile {resolved.name}: model {resolved.model.name}, data {resolved.data_source()}, "
              f"judge {session.judge}")
        display(session.settings())
    return session


def record(name: str, value: Any) -> Any:
    """Store ``value`` in the cell's output under ``name`` for tests to read back, unseen: the notebook shows the
    value itself (a table, a sentence), so a reader sees it once.

    The output carries an empty plain-text view: a frontend shows that (nothing) instead of the record, and
    without it JupyterLab would say that no renderer exists for the record's MIME type.
    """
    from IPython.display import display

    if hasattr(value, "to_json"):  # a DataFrame: one dict per row, a named index kept as a column
        import pandas as pd

        frame = value if isinstance(value.index, pd.RangeIndex) else value.reset_index()
        stored = json.loads(frame.to_json(orient="records"))
    else:
        stored = json.loads(json.dumps(value, default=float))
    display({RECORD_MIME: {"name": name, "value": stored}, "text/plain": ""}, raw=True)
    return value


def read_records(executed: str | Path) -> dict[str, Any]:
    """Every value an executed notebook stored with :func:`record`, by name (a later record wins)."""
    notebook = json.loads(Path(executed).read_text(encoding="utf-8"))
    found = {}
    for cell in notebook["cells"]:
        for output in cell.get("outputs", []):
            item = output.get("data", {}).get(RECORD_MIME)
            if item:
                found[item["name"]] = item["value"]
    return found


def notebook_paths(folder: str | Path | None = None) -> list[Path]:
    """The numbered notebooks (``NN_name.ipynb``) in order."""
    folder = Path(folder) if folder else repo_root() / "notebooks"
    return sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb"))


# Only a hung cell should reach this: an hour is about six times the longest whole notebook measured (notebook
# 04, 622 s on 2 CPU cores), so a laptop twice or three times as slow still finishes. An error stops the run at
# once, whatever this is.
CELL_TIMEOUT_S = 3600


def run_notebook(path: Path, out_dir: Path, profile: str | None = None, parameters: dict | None = None,
                 cell_timeout: int | None = CELL_TIMEOUT_S) -> tuple[Path, float]:
    """Execute one notebook in a fresh kernel; returns the executed copy and the seconds it took.

    The first cell that fails stops it with papermill's error, naming the cell; ``cell_timeout`` (None: none)
    is the seconds one cell may run."""
    import papermill

    profile = profile or config.resolve().name
    out_dir.mkdir(parents=True, exist_ok=True)
    output = out_dir / path.name
    started = time.perf_counter()
    env_profile = os.environ.get(PROFILE_ENV)
    os.environ[PROFILE_ENV] = profile  # the kernel inherits it, so helpers agree with the parameters cell
    try:
        papermill.execute_notebook(
            str(path), str(output), parameters={"PROFILE": profile, **(parameters or {})},
            cwd=str(path.parent), kernel_name="python3", progress_bar=False, execution_timeout=cell_timeout,
        )
    finally:
        if env_profile is None:
            os.environ.pop(PROFILE_ENV, None)
        else:
            os.environ[PROFILE_ENV] = env_profile
    return output, time.perf_counter() - started


def run_all(profile: str | None = None, out_dir: str | Path | None = None, only: list[str] | None = None,
            settings: Mapping[str, Any] | None = None, config_file: str | None = None) -> list[tuple[str, float]]:
    """Run every numbered notebook (or those whose names start with one of ``only``); report the timings.

    ``settings`` and ``config_file`` reach each notebook's ``SETTINGS`` and ``CONFIG`` parameters.
    """
    profile = profile or config.resolve().name
    out = Path(out_dir) if out_dir else repo_root() / "build" / "notebooks"
    parameters = {}
    if settings:
        parameters["SETTINGS"] = dict(settings)
    if config_file:
        parameters["CONFIG"] = str(Path(config_file).resolve())
    timings = []
    for path in notebook_paths():
        if only and not any(path.name.startswith(prefix) for prefix in only):
            continue
        print(f"running {path.name} (profile {profile}) ...", flush=True)
        output, seconds = run_notebook(path, out, profile, parameters)
        print(f"  done in {seconds:.1f} s -> {output}", flush=True)
        timings.append((path.name, seconds))
    if not timings:
        raise FileNotFoundError("no numbered notebooks matched")
    return timings
