"""One rank of the two-process rehearsal (tests/test_rehearsal.py starts two under torchrun).

Runs ``sft``, ``grpo`` and ``memory train`` on the tiny profile through the CLI into ``ROOT/<stage>``,
2 steps each with a checkpoint every step, reading the questions in ``DATA`` (a copy of the mini data
whose two training questions have histories of different lengths, so the ranks' memory rollouts read
different numbers of chunks). Phase ``first`` stops each stage right after checkpoint-1 is saved, as
a killed run would; phase ``resume`` runs the same commands, which go on from that checkpoint.

Every step, each rank appends to ``ROOT/steps-rank<r>.jsonl`` what it did: training passes (forward
passes with gradients), sampling passes, optimizer steps, and whether its weights are sharded; memory
RL also leaves its updates per rollout in ``ROOT/updates-rank<r>.json``.

``REHEARSAL_UNEQUAL_PASSES=1`` puts back the old memory RL step (each rank trains only its own pieces),
to see the rehearsal catch it; ``REHEARSAL_STAGES`` runs a subset (debugging one stage).
Usage: rehearsal_worker.py ROOT PHASE DATA
"""

import json
import os
import sys
from pathlib import Path

import torch
from transformers import TrainerCallback

RANK = int(os.environ["RANK"])
STEPS = ["--profile", "tiny", "--max-steps", "2", "--save-every", "1", "--rows", "2"]
COMMANDS = {
    "sft": ["sft", *STEPS, "--set", "sft.max_length=768", "--set", "sft.eval_rows=1"],
    "grpo": ["grpo", *STEPS, "--micro-batch", "2", "--set", "grpo.max_completion_length=4"],
    "memory": ["memory", "train", *STEPS, "--set", "memory.memory_tokens=4",
               "--set", "memory.rl.max_answer_tokens=4", "--set", "memory.rl.turn_batch=2"],
}


class Interrupted(Exception):
    """Raised after the first checkpoint in phase 'first', so the run stops as a killed one would."""


class StepRecorder(TrainerCallback):
    """Counts what one rank did in each training step and appends it to the rank's record file."""

    def __init__(self, path: Path, stage: str, stop_after_save: bool):
        self.path, self.stage, self.stop_after_save = path, stage, stop_after_save
        self.forwards = self.sampling_passes = self.optimizer_steps = 0
        self.logged: dict = {}
        self.sharding: dict = {}

    def on_train_begin(self, args, state, control, model=None, optimizer=None, **kwargs):
        from torch.distributed.tensor import DTensor

        model.register_forward_pre_hook(self.count_pass)
        getattr(optimizer, "optimizer", optimizer).register_step_post_hook(
            lambda *_: setattr(self, "optimizer_steps", self.optimizer_steps + 1))
        params = list(model.parameters())
        self.sharding = {"dtensors": all(isinstance(p, DTensor) for p in params),
                         "local": sum(p.to_local().numel() if isinstance(p, DTensor) else p.numel() for p in params),
                         "total": sum(p.numel() for p in params)}

    def count_pass(self, *_):
        """Training passes (with gradients) and sampling passes are counted apart: only the first must agree."""
        if torch.is_grad_enabled():
            self.forwards += 1
        else:
            self.sampling_passes += 1

    def on_log(self, args, state, control, logs=None, **kwargs):
        self.logged.update({k: v for k, v in (logs or {}).items() if k == "memory/updates_per_rollout"})

    def on_step_end(self, args, state, control, **kwargs):
        record = {"stage": self.stage, "step": state.global_step, "forwards": self.forwards,
                  "sampling_passes": self.sampling_passes, "optimizer_steps": self.optimizer_steps, **self.sharding}
        with self.path.open("a") as handle:
            handle.write(json.dumps(record) + "\n")
        self.forwards = self.sampling_passes = self.optimizer_steps = 0

    def on_save(self, args, state, control, **kwargs):
        if self.stop_after_save:
            raise Interrupted


def train_own_pieces_only() -> None:
    """The memory RL step before the fix: every rank runs as many passes as it has pieces of turns."""
    from pmv2nb.train.memory_rl import MemoryGRPOTrainer

    MemoryGRPOTrainer.agreed_passes = lambda self, pieces: pieces


def main(root: str, phase: str, data: str) -> None:
    from pmv2nb.cli import main as cli
    from pmv2nb.train import common

    if os.environ.get("REHEARSAL_UNEQUAL_PASSES") == "1":
        train_own_pieces_only()
    root = Path(root)
    record_path = root / f"steps-rank{RANK}.jsonl"
    callbacks = common.RunFolder.callbacks
    for stage in os.environ.get("REHEARSAL_STAGES", " ".join(COMMANDS)).split():
        recorder = StepRecorder(record_path, stage, stop_after_save=phase == "first")
        common.RunFolder.callbacks = lambda folder, recorder=recorder: [*callbacks(folder), recorder]
        try:
            code = cli([*COMMANDS[stage], "--set", f"data.source={data}", "--out", str(root / stage)])
            assert code == 0, f"{stage} failed"
        except Interrupted:
            pass
        if recorder.logged:
            (root / f"updates-rank{RANK}.json").write_text(json.dumps(recorder.logged))


if __name__ == "__main__":
    main(*sys.argv[1:])
