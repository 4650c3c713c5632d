"""Execute the numbered notebooks headless, the way CI and the README's main job do.

Each notebook runs in a fresh kernel through papermill with its ``parameters`` cell overridden
(the profile above all), and the executed copy lands in a git-ignored folder; the committed
notebooks stay free of outputs. A failing cell stops the run with the notebook's name.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from .config import PROFILE_ENV, repo_root


def notebook_paths(folder: str | Path | None = None) -> list[Path]:
    """The numbered notebooks (``NN_name.ipynb``) in order."""
    folder = Path(folder) if folder else repo_root() / "notebooks"
    return sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb"))


def run_notebook(path: Path, out_dir: Path, profile: str = "tiny", parameters: dict | None = None,
                 cell_timeout: int = 600) -> tuple[Path, float]:
    """Execute one notebook in a fresh kernel; returns the executed copy and the seconds it took."""
    import papermill

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


def run_all(profile: str = "tiny", out_dir: str | Path | None = None, only: list[str] | None = None) -> list[tuple[str, float]]:
    """Run every numbered notebook (or those whose names start with one of ``only``); report the timings."""
    out = Path(out_dir) if out_dir else repo_root() / "build" / "notebooks"
    timings = []
    for path in notebook_paths():
        if only and not any(path.name.startswith(prefix) for prefix in only):
            continue
        print(f"running {path.name} (profile {profile}) ...", flush=True)
        output, seconds = run_notebook(path, out, profile)
        print(f"  done in {seconds:.1f} s -> {output}", flush=True)
        timings.append((path.name, seconds))
    if not timings:
        raise FileNotFoundError("no numbered notebooks matched")
    return timings
