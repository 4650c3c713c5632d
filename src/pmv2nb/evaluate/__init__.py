"""Benchmark any chat backend on PersonaMem-v2: multiple choice and open-ended with LLM judges.

``parse_choice`` reads an option letter out of free text; ``run_eval`` runs a model over rows with
a resumable cache and incremental results; ``breakdown`` turns results into accuracy tables with
bootstrap confidence intervals, the tables behind the paper's Figures 4 and 5.
"""

from .breakdown import BREAKDOWNS, bootstrap_ci, breakdown, order_consistency, position_bias, report_tables
from .cache import CachedBackend, CallCache
from .parsing import parse_choice, parse_score
from .results import read_results
from .runner import EvalRun, RunSettings, estimate, run_eval
from .tasks import build_task, option_order

__all__ = ["BREAKDOWNS", "CachedBackend", "CallCache", "EvalRun", "RunSettings", "bootstrap_ci", "breakdown",
           "build_task", "estimate", "option_order", "order_consistency", "parse_choice", "parse_score",
           "position_bias", "read_results",
           "report_tables", "run_eval"]
