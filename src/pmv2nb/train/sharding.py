"""Sharded weights: generation that needs no collective per forward pass, and the CPU rehearsal's FSDP switch.

Under ZeRO-3 and FSDP every forward pass gathers the weights from all ranks, so ranks that run
different numbers of forward passes wait for each other until the collective times out. Sampling
is where the counts differ (replies end at different lengths, personas have different numbers of
chunks), so :func:`weights_for_generation` gathers the weights once, generates on them, and
shards them again: DeepSpeed ZeRO-3 through TRL's ``unwrap_model_for_generation``, FSDP2 here.
Whoever generates on them must also pass ``synced_gpus=False``: transformers turns it on under
both engines, and it steps every rank's ``generate`` together token by token.
"""

from __future__ import annotations

import contextlib
import os

CPU_FSDP_SWITCH = "PMV2NB_REHEARSE_FSDP_ON_CPU"


@contextlib.contextmanager
def gathered_fsdp2_weights(model):
    """Every FSDP2 module of ``model`` unsharded once and kept whole until the block ends (no-op otherwise).

    Sharded, every forward pass gathers each layer's weights from all ranks: a sampled reply costs
    one gather per layer per token, and a rank that runs fewer passes than another (memory rollouts
    over fewer chunks) leaves it waiting forever. Whole, a forward pass needs no other rank, as on
    ZeRO-3's weights gathered by TRL for generation. Each module's "reshard after forward" choice is
    put back afterwards.
    """
    from torch.distributed.fsdp import FSDPModule

    sharded = [module for module in model.modules() if isinstance(module, FSDPModule)]
    if not sharded:
        yield model
        return
    # FSDP2 keeps "reshard after forward" per parameter group (and the root's automatic choice per
    # module); remember both to put them back exactly
    states = [module._get_fsdp_state() for module in sharded]
    saved = [(state._auto_reshard_after_forward, [g.post_forward_mesh_info for g in state._fsdp_param_groups])
             for state in states]
    for module in sharded:
        module.unshard()
        module.set_reshard_after_forward(False, recurse=False)
    try:
        yield model
    finally:
        for state, (automatic, mesh_infos) in zip(states, saved):
            state._auto_reshard_after_forward = automatic
            for group, mesh_info in zip(state._fsdp_param_groups, mesh_infos):
                group.post_forward_mesh_info = mesh_info
        for module in sharded:
            module.reshard()


@contextlib.contextmanager
def weights_for_generation(model, accelerator):
    """The policy to generate with, its weights whole on every rank for the duration (one gather in, none per pass):
    FSDP2 by :func:`gathered_fsdp2_weights`, DeepSpeed ZeRO-3 by TRL's ``unwrap_model_for_generation``."""
    from trl.models import unwrap_model_for_generation

    with gathered_fsdp2_weights(model), unwrap_model_for_generation(model, accelerator) as policy:
        yield policy


def allow_fsdp_on_cpu() -> bool:
    """With ``PMV2NB_REHEARSE_FSDP_ON_CPU=1``: let accelerate shard with FSDP across CPU processes (gloo).

    For the two-process rehearsal in the test suite only. accelerate turns FSDP on for accelerator
    devices alone and runs CPU processes as plain data parallel (MULTI_CPU), which never shards;
    PyTorch's FSDP2 itself trains on CPUs over gloo. With the switch on, a CPU launch configured for
    FSDP (``ACCELERATE_USE_FSDP``, as ``accelerate launch`` sets it from an FSDP config) takes
    accelerate's FSDP path. Returns whether the switch is on.
    """
    if os.environ.get(CPU_FSDP_SWITCH) != "1":
        return False
    from accelerate.state import AcceleratorState, PartialState
    from accelerate.utils import DistributedType

    original = AcceleratorState.__init__
    if getattr(original, "allows_fsdp_on_cpu", False):
        return True

    def init(self, *args, fsdp_plugin=None, **kwargs):
        original(self, *args, fsdp_plugin=fsdp_plugin, **kwargs)
        if self.distributed_type == DistributedType.MULTI_CPU and fsdp_plugin is not None:
            self.distributed_type = DistributedType.FSDP
            self.fsdp_plugin = fsdp_plugin
            # as accelerate does on GPUs: every later AcceleratorState() copies the partial state's type back
            PartialState._shared_state["distributed_type"] = DistributedType.FSDP

    init.allows_fsdp_on_cpu = True
    AcceleratorState.__init__ = init
    return True


__all__ = ["CPU_FSDP_SWITCH", "allow_fsdp_on_cpu", "gathered_fsdp2_weights", "weights_for_generation"]
