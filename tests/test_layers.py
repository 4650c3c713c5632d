"""Imports run one way: a module may import from its own layer or below, never from a higher one, and the
top-level modules of one layer import each other without a cycle.

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
    **dict.fromkeys(("config", "messages", "protocol", "prompts", "ranks", "models", "data", "answers"), 0),
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


def top_level(module: str) -> str:
    """The first name under pmv2nb (``pmv2nb.data.columns`` -> ``data``); the package itself is ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def layer_of(module: str) -> int | None:
    return LAYERS.get(top_level(module))


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


def import_cycles(root: Path) -> list[str]:
    """One message per cycle among the top-level modules, each step shown with the import that makes it.

    The layer rule cannot see these when every module of the cycle sits in one layer (``data`` importing
    ``models`` inside a function while ``models`` imports ``data``)."""
    edges: dict[str, dict[str, str]] = {}
    for path in sorted(root.rglob("*.py")):
        source = top_level(module_name(path, root))
        for line, target in imported_modules(path, root):
            if top_level(target) != source:
                edges.setdefault(source, {}).setdefault(top_level(target), f"{path.relative_to(root.parent)}:{line}")
    cycles, reported = [], set()

    def walk(module: str, trail: list[str]) -> None:
        for target in sorted(edges.get(module, {})):
            if target in trail:
                loop = trail[trail.index(target):]
                if frozenset(loop) not in reported:
                    reported.add(frozenset(loop))
                    steps = [f"{a} -> {b} ({edges[a][b]})" for a, b in zip(loop, loop[1:] + loop[:1])]
                    cycles.append("; ".join(steps))
            else:
                walk(target, trail + [target])

    for start in sorted(edges):
        walk(start, [start])
    return cycles


def test_no_module_imports_from_a_higher_layer():
    problems = upward_imports(SOURCE)
    assert not problems, "upward imports:\n" + "\n".join(problems)


def test_top_level_modules_import_each_other_without_a_cycle():
    cycles = import_cycles(SOURCE)
    assert not cycles, "import cycles (move what both need below both):\n" + "\n".join(cycles)


def test_the_cycle_check_sees_a_cycle_inside_one_layer_hidden_in_a_function(tmp_path):
    # the cycle this check was written for: models read data.columns inside a function while data imported models
    root = tmp_path / PACKAGE
    (root / "data").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "models.py").write_text("from .config import Profile\n\n\ndef count():\n"
                                    "    from .data.columns import content_text\n")
    (root / "config.py").write_text("")
    (root / "data" / "__init__.py").write_text("")
    (root / "data" / "columns.py").write_text("")
    (root / "data" / "stats.py").write_text("def lengths():\n    from ..models import tokenizer_for\n")
    assert upward_imports(root) == []  # data and models share layer 0: the layer rule alone passes this
    assert import_cycles(root) == [f"data -> models ({PACKAGE}/data/stats.py:2); "
                                   f"models -> data ({PACKAGE}/models.py:5)"]
    (root / "models.py").write_text("from .config import Profile\n")
    assert import_cycles(root) == []


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
