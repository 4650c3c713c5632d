"""Where the files live: a local folder laid out like the Hub repo, or the Hub repo itself.

Both answer one question, "give me a local path for this repo-relative file", so the loader
does not care which it reads. The Hub source downloads each file once into the Hugging Face
cache; a local mirror refuses links that point outside its root.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from ..config import HUB_DATASET
from .columns import DataError


def _relative_parts(link: str) -> PurePosixPath:
    path = PurePosixPath(link.strip())
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise DataError(f"link {link!r} points outside the data root")
    return path


class LocalMirror:
    """A directory with the Hub repo's layout (benchmark/<modality>/<split>.csv, data/chat_history_*/...)."""

    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser().resolve()
        if not self.root.is_dir():
            raise DataError(
                f"data directory {self.root} does not exist; use the embedded mini dataset (data/mini), "
                f"a local copy of the Hub repo, or 'hub'"
            )

    def __str__(self) -> str:
        return str(self.root)

    def fetch(self, link: str) -> Path:
        path = (self.root / _relative_parts(link)).resolve()
        if not path.is_relative_to(self.root):
            raise DataError(f"link {link!r} resolves outside the data root {self.root}")
        if not path.is_file():
            raise DataError(f"file {link!r} not found under {self.root}")
        return path


class HubMirror:
    """The dataset repo on the Hugging Face Hub; each file is downloaded once and then read from cache."""

    def __init__(self, repo_id: str = HUB_DATASET, cache_dir: str | Path | None = None, revision: str | None = None):
        self.repo_id, self.revision = repo_id, revision
        self.cache_dir = str(Path(cache_dir).expanduser()) if cache_dir else None

    def __str__(self) -> str:
        return f"hf://datasets/{self.repo_id}"

    def fetch(self, link: str) -> Path:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError, RepositoryNotFoundError

        relative = str(_relative_parts(link))
        try:
            return Path(hf_hub_download(self.repo_id, relative, repo_type="dataset",
                                        cache_dir=self.cache_dir, revision=self.revision))
        except LocalEntryNotFoundError:  # a subclass of EntryNotFoundError: test it first
            raise DataError(
                f"cannot download {relative!r} from {self.repo_id}: the Hub is unreachable or HF_HUB_OFFLINE=1 "
                f"and the file is not cached. Use --source data/mini (the embedded mini dataset) or a local mirror."
            ) from None
        except EntryNotFoundError:
            raise DataError(f"file {relative!r} is not in the Hub repo {self.repo_id}") from None
        except RepositoryNotFoundError:
            raise DataError(f"the Hub repo {self.repo_id} was not found (or needs a token: set HF_TOKEN)") from None


def open_source(source: str | Path, cache_dir: str | Path | None = None) -> LocalMirror | HubMirror:
    """``"hub"`` (or ``hub:owner/name``) for the Hub repo, anything else is a local directory."""
    text = str(source)
    if text == "hub":
        return HubMirror(cache_dir=cache_dir)
    if text.startswith("hub:"):
        return HubMirror(text[len("hub:"):], cache_dir=cache_dir)
    return LocalMirror(text)


def table_path(split: str, modality: str = "text") -> str:
    """Repo-relative path of a question table."""
    return f"benchmark/{modality}/{split}.csv"


MINI_README_TITLE = "# The pmv2nb mini dataset"


def describe_source(source: LocalMirror | HubMirror | str) -> str:
    """A short, honest label for where data came from, stored with every result row.

    The embedded synthetic data reads ``mini (synthetic)`` wherever it is copied, so a tiny-profile
    number is never taken for one measured on the real benchmark.
    """
    if isinstance(source, HubMirror):
        return f"hub:{source.repo_id}"
    root = source.root if isinstance(source, LocalMirror) else Path(str(source))
    readme = root / "README.md"
    if readme.is_file() and readme.read_text(encoding="utf-8", errors="replace").startswith(MINI_README_TITLE):
        return "mini (synthetic)"
    return f"local:{root}"
