"""Imports run one way: a module may import from its own layer or below, never from a higher one.

Checked on the source with ``ast``, so imports inside functions count too and nothing is imported.
"""

import ast
from pathlib import Path

import pytest

from pmv2nb.config import repo_root

PACKAGE = "pmv2nb"
SOURCE = repo_root() / "src" / PACKAGE
# the first name under pmv2nb -> its layer (0 at the bottom); a new module must be placed here
LAYERS = {
    **dict.fromkeys(("config", "protocol", "prompts", "ranks", "models", "data", "answers"), 0),
    "backends": 1,
    "evaluate": 2,
    "memory": 3,
    "train": 4,
    **dict.fromkeys(("shelf", "plots", "paper_figures", "paper_numbers", "cli", "notebooks", "__init__"), 5),
}


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, root: Path):
    """(line, absolute module name) for every import of the package in ``path``, relative ones resolved."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            if node.module and module != PACKAGE:
                targets = [module]
            else:  # "from . import x": the module x, or a name from the package's __init__
                targets = [f"{module}.{a.name}" if a.name in LAYERS else module for a in node.names]
        else:
            continue
        for target in targets:
            if target == PACKAGE or target.startswith(PACKAGE + "."):
                yield node.lineno, target


def layer_of(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.get(parts[1] if len(parts) > 1 else "__init__")


def upward_imports(root: Path) -> list[str]:
    """One message per import that reaches a higher layer, or names a module with no layer yet."""
    problems = []
    for path in sorted(root.rglob("*.py")):
        own = layer_of(module_name(path, root))
        where = path.relative_to(root.parent)
        if own is None:
            problems.append(f"{where}: not in LAYERS (tests/test_layers.py); give it a layer")
            continue
        for line, target in imported_modules(path, root):
            layer = layer_of(target)
            if layer is None:
                problems.append(f"{where}:{line} imports {target}, which has no layer in LAYERS")
            elif layer > own:
                problems.append(f"{where}:{line} imports {target} (layer {layer}) from layer {own}")
    return problems


def test_no_module_imports_from_a_higher_layer():
    problems = upward_imports(SOURCE)
    assert not problems, "upward imports:\n" + "\n".join(problems)


def test_every_top_level_module_has_a_layer():
    names = {p.stem for p in SOURCE.glob("*.py")} | {p.name for p in SOURCE.iterdir() if (p / "__init__.py").is_file()}
    assert names <= set(LAYERS), f"give these a layer: {sorted(names - set(LAYERS))}"


@pytest.mark.parametrize("source, expected", [
    ("def f():\n    from ..train.rewards import leaks\n", "memory/run.py:2 imports pmv2nb.train.rewards (layer 4)"),
    ("from .. import shelf\n", "memory/run.py:1 imports pmv2nb.shelf (layer 5)"),
    ("import pmv2nb.cli\n", "memory/run.py:1 imports pmv2nb.cli (layer 5)"),
])
def test_the_check_names_file_line_and_module_of_an_upward_import(tmp_path, source, expected):
    root = tmp_path / PACKAGE
    (root / "memory").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "memory" / "__init__.py").write_text("from .run import x\n")
    (root / "memory" / "run.py").write_text(source)
    problems = upward_imports(root)
    assert len(problems) == 1 and problems[0].startswith(f"{PACKAGE}/{expected}"), problems


def test_downward_and_same_layer_imports_pass(tmp_path):
    root = tmp_path / PACKAGE
    (root / "train").mkdir(parents=True)
    (root / "train" / "__init__.py").write_text("from . import common\n")
    (root / "train" / "common.py").write_text("from ..answers import leaks\nfrom ..memory.agent import Chunker\n"
                                              "from .rewards import mcq_reward\n")
    assert upward_imports(root) == []
