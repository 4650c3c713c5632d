"""PersonaMem-v2 data: typed question tables, shared histories, the Hub and local mirrors, the mini dataset."""

from ..messages import content_images, content_text
from .columns import COLUMNS, PREF_TYPES, SCENARIOS, DataError
from .histories import ChatHistory, HistoryStore
from .loader import PersonaMemData, load_profile_split, load_split

__all__ = [
    "COLUMNS", "PREF_TYPES", "SCENARIOS", "DataError", "content_images", "content_text",
    "ChatHistory", "HistoryStore", "PersonaMemData", "load_profile_split", "load_split",
]
