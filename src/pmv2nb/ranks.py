"""Which process of a multi-process launch this one is, and the rule for files that every process needs.

``torchrun`` and ``accelerate launch`` set ``WORLD_SIZE`` and ``LOCAL_RANK`` for each process; a plain
Python process (a notebook, a single-process command) has neither and counts as a launch of one.
Eight processes that each ask the Hub for the same files make eight times the requests, race in the
cache and meet the Hub's rate limits together: in a launch, the first process of each node fetches,
and the others wait for it and then read its cache without asking the Hub at all.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager


def world_size() -> int:
    """The processes in this launch (1 outside one)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def local_rank() -> int:
    """This process's place on its node (0 for the node's first process, and outside a launch)."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def reads_fetched_files() -> bool:
    """True in a process that should take Hub files from the cache its node's first process filled."""
    return world_size() > 1 and local_rank() != 0


@contextmanager
def node_leader_first() -> Iterator[None]:
    """Run the block in each node's first process, then in the others once it has finished (a barrier).

    Every process of the launch must enter it, and none may enter another inside it (the barriers would
    not pair up). Outside a launch it just runs the block.
    """
    if world_size() <= 1:
        yield
        return
    import torch
    from accelerate import PartialState

    # the state is made once per process and kept: on a CPU it must be asked for as a CPU launch (gloo), as
    # the trainers' own arguments later ask for it, or it would settle as a single process
    with PartialState(cpu=not torch.cuda.is_available()).local_main_process_first():
        yield


__all__ = ["local_rank", "node_leader_first", "reads_fetched_files", "world_size"]
