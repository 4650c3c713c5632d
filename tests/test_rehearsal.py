"""The 8-GPU launch rehearsed on two CPU processes: sft, grpo and memory train with sharded weights.

Both ranks are started by ``accelerate launch`` with the committed FSDP2 config (only the process
count changed), over gloo, with the CPU FSDP switch on (see ``pmv2nb.train.sharding``). The two
training questions have histories of different lengths, so the ranks' memory rollouts read
different numbers of chunks: the case where a sharded run hangs unless every rank runs the same
training passes. A hang fails the test at its deadline, and the process group is killed.
"""

import json
import os
import shutil
import signal
import subprocess
import sys

import pandas as pd
import pytest

from pmv2nb.config import repo_root

REPO = repo_root()
WORKER = REPO / "tests" / "rehearsal_worker.py"
FSDP2_CONFIG = REPO / "configs" / "accelerate" / "fsdp2_8gpu.yaml"
STAGES = ("sft", "grpo", "memory")
# measured on 2 cores: each phase about a minute (three stages, one step each, plus start-up); a
# hang waits for ever, so a deadline eight times that fails it without leaving CI waiting
PHASE_DEADLINE_S = 480

pytestmark = pytest.mark.slow


def rehearsal_data(mini, target):
    """A copy of the mini data whose train split holds two questions: the personas with the longest and
    the shortest 32k history, so the two ranks' histories split into different numbers of chunks."""
    shutil.copytree(mini, target)
    table = target / "benchmark" / "text" / "train.csv"
    rows = pd.read_csv(table)
    tokens = rows["total_tokens_in_chat_history_32k"]
    pd.concat([rows.loc[[tokens.idxmax()]], rows.loc[[tokens.idxmin()]]]).to_csv(table, index=False)
    return target


def launch(root, phase, data, extra_env=None):
    """Run one phase of the worker on two processes; on the deadline, kill them all and fail."""
    env = {**os.environ, "PMV2NB_REHEARSE_FSDP_ON_CPU": "1", "HF_HUB_OFFLINE": "1", **(extra_env or {})}
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(FSDP2_CONFIG),
               "--num_processes", "2", str(WORKER), str(root), phase, str(data)]
    log = root / f"{phase}.log"
    with log.open("w") as output:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=output, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        try:
            code = process.wait(timeout=PHASE_DEADLINE_S)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            pytest.fail(f"phase {phase} still running after {PHASE_DEADLINE_S} s (a hang?): {tail(log)}")
    assert code == 0, f"phase {phase} failed: {tail(log)}"


def tail(log, lines=40):
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def records(root, rank):
    return [json.loads(line) for line in (root / f"steps-rank{rank}.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory, mini_root):
    """Both phases run once: the first stops each stage after checkpoint-1, the second resumes it."""
    root = tmp_path_factory.mktemp("rehearsal")
    data = rehearsal_data(mini_root, root / "data")
    launch(root, "first", data)
    checkpoints = {stage: sorted(p.name for p in (root / stage).glob("checkpoint-*")) for stage in STAGES}
    launch(root, "resume", data)
    return root, checkpoints


def test_both_ranks_train_the_same_steps_on_sharded_weights(rehearsal):
    root, _ = rehearsal
    ranks = [records(root, 0), records(root, 1)]
    for stage in STAGES:
        steps = [[r for r in rank if r["stage"] == stage] for rank in ranks]
        assert [r["step"] for r in steps[0]] == [1, 2] == [r["step"] for r in steps[1]], stage
        for first, second in zip(*steps):
            # the same training passes on both ranks, one optimizer step per training step
            assert first["forwards"] == second["forwards"] >= 1, (stage, first, second)
            assert first["optimizer_steps"] == second["optimizer_steps"] == 1, (stage, first, second)
            for record in (first, second):  # each rank holds about half of every weight
                assert record["dtensors"], (stage, record)
                assert abs(record["local"] / record["total"] - 0.5) < 0.01, (stage, record)


def test_memory_rollouts_differ_between_ranks(rehearsal):
    """The case the equal passes are for: one rank reads more chunks, samples more, and has more turns."""
    root, _ = rehearsal
    updates = [json.loads((root / f"updates-rank{rank}.json").read_text())["memory/updates_per_rollout"]
               for rank in (0, 1)]
    assert updates[0] != updates[1]
    sampling = [[r["sampling_passes"] for r in records(root, rank) if r["stage"] == "memory"] for rank in (0, 1)]
    assert all(mine != theirs for mine, theirs in zip(*sampling)), sampling  # in every step


def test_each_stage_resumes_from_its_checkpoint_and_saves_whole_weights(rehearsal):
    from safetensors import safe_open

    root, checkpoints = rehearsal
    for stage in STAGES:
        assert checkpoints[stage] == ["checkpoint-1"], stage
        run = json.loads((root / stage / "run.json").read_text())
        assert run["resumed_from_step"] == 1, stage
        assert not list((root / stage).glob("checkpoint-*")), stage  # removed once the run finished
        with safe_open(root / stage / "model.safetensors", "pt") as weights:  # gathered, not one rank's shard
            assert weights.get_slice("model.embed_tokens.weight").get_shape() == [151669, 64], stage
