"""Hub files a launch needs are fetched once per node: the first process downloads, the others read its cache.

Two processes over gloo stand in for a launch's ranks (``WORLD_SIZE``, ``LOCAL_RANK`` as torchrun sets
them) and start a training stage the way every stage starts (:func:`pmv2nb.train.common.fetched_start`),
from a model and the dataset on a loopback stand-in for the Hub (``hub_stub``). The stand-in's log says
who asked for what: the launch must send the requests of one process, not two.
"""

import json
import os
import signal
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from hub_stub import HubStub
from pmv2nb.models import tiny_model_dir

MODEL = "stub-org/tiny-qwen3"
DEADLINE_S = 240  # two processes importing torch and transformers on 2 cores: about 20 s
START = """
import json, sys
from pmv2nb import config
from pmv2nb.train.common import fetched_start
profile = config.resolve("small", {"data.source": "hub", "data.cache_dir": sys.argv[1]})
print(json.dumps({"start": fetched_start(profile, sys.argv[2])}))
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_stage(stub, cache, processes: int) -> list[str]:
    """Run the stage start in ``processes`` processes (one node); the folder each was handed."""
    port, running = free_port(), []
    for rank in range(processes):
        env = {**os.environ, "HF_ENDPOINT": stub.url, "HF_HUB_OFFLINE": "0", "HF_HUB_CACHE": str(cache),
               "HF_HUB_DISABLE_XET": "1"}
        if processes > 1:
            env.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(processes), LOCAL_WORLD_SIZE=str(processes),
                       MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        running.append(subprocess.Popen([sys.executable, "-c", START, str(cache), MODEL], env=env, text=True,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True))
    folders = []
    for process in running:
        try:
            out, err = process.communicate(timeout=DEADLINE_S)
        except subprocess.TimeoutExpired:
            for other in running:
                os.killpg(other.pid, signal.SIGKILL)
            pytest.fail(f"the stage start did not finish in {DEADLINE_S} s (a barrier that never paired up?)")
        assert process.returncode == 0, err[-3000:]
        folders.append(json.loads(out.strip().splitlines()[-1])["start"])
    return folders


@pytest.fixture
def hub(mini_root):
    with HubStub(mini_root, models={MODEL: tiny_model_dir()}) as stub:
        yield stub


def requests(stub) -> Counter:
    return Counter((method, path) for method, path, outcome in stub.log if outcome == 200)


def test_a_two_process_launch_asks_the_hub_once_for_each_thing(hub, tmp_path):
    alone = start_stage(hub, tmp_path / "alone", 1)
    assert alone == [MODEL] and not hub.log  # one process keeps the id: from_pretrained checks the Hub itself

    folders = start_stage(hub, tmp_path / "launch", 2)
    snapshot = Path(folders[0])
    assert folders[0] == folders[1] and snapshot.is_relative_to(tmp_path / "launch")
    assert {p.name for p in snapshot.iterdir()} >= {"config.json", "model.safetensors", "tokenizer.json"}
    # huggingface_hub fetches its registry of coding-agent harnesses (api/agent-harnesses) for its user agent
    # string in every process that has no cached copy: the client's own bookkeeping, not a file of the launch
    asked = Counter((method, path) for method, path, outcome in hub.log if path != "api/agent-harnesses")
    assert [path for method, path in asked if method == "GET" and path.startswith(MODEL)]  # the model came from it
    assert [path for method, path in asked if method == "GET" and path.startswith("benchmark/")]  # the table too
    # the second process sent nothing of its own: every request (revision, file tree, each file's HEAD and GET) once
    assert {key: n for key, n in asked.items() if n > 1} == {}
