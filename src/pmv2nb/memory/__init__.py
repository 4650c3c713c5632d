"""The chunked memory agent: chunking, the batched update loop, running it on the benchmark, and audits."""

from .agent import MemoryJob, Rewrite, Trajectory, notes_from_reply, run_updates
from .audit import cap_rate, memory_diff, privacy_audit, token_accounting, trajectory_html, trajectory_table
from .chunking import Chunking, chunk_history, chunk_text, token_spans
from .run import memory_spec, read_trajectories, reanswer, run_memory, run_profile_memory

__all__ = ["Chunking", "MemoryJob", "Rewrite", "Trajectory", "cap_rate", "chunk_history", "chunk_text", "memory_diff",
           "memory_spec", "notes_from_reply", "privacy_audit", "read_trajectories", "reanswer", "run_memory",
           "run_profile_memory", "run_updates", "token_accounting", "token_spans", "trajectory_html",
           "trajectory_table"]
