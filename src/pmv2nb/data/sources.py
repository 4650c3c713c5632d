"""Where the files live: a local folder laid out like the Hub repo, or the Hub repo itself.

Both answer one question, "give me a local path for this repo-relative file", so the loader
does not care which it reads. The Hub source downloads each file once into the Hugging Face
cache, tries again when the Hub is busy, and never hands out a cached copy that fails its
checksum; a local mirror refuses links that point outside its root.
"""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path, PurePosixPath

from ..config import HUB_DATASET
from ..ranks import reads_fetched_files
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

    def fetch_again(self, link: str, problem: str) -> Path:
        """A local file has no other copy to fall back on: say which one to replace."""
        raise DataError(f"{link!r} under {self.root} {problem}; it may have been cut short while copying: "
                        f"copy it again")


# Statuses and network errors worth another try: the Hub is busy or the link dropped, not a wrong request.
TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
COMMIT = re.compile(r"[0-9a-f]{40}")
SHA256 = re.compile(r"[0-9a-f]{64}")


def _causes(error: BaseException | None):
    """The error and the ones behind it (``__cause__``), outermost first: the Hub client wraps what went wrong."""
    while error is not None:
        yield error
        error = error.__cause__


def _transient(error: BaseException | None) -> bool:
    """Whether an error, or the one behind it, may well pass on a later try (busy Hub, dropped link)."""
    import httpx
    from huggingface_hub.errors import HfHubHTTPError

    for cause in _causes(error):
        if isinstance(cause, (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)):
            return True
        if isinstance(cause, HfHubHTTPError):
            return cause.response is not None and cause.response.status_code in TRANSIENT_STATUSES
        # a body shorter or longer than the size the Hub announced: huggingface_hub raises a bare OSError
        if type(cause) is OSError and str(cause).startswith("Consistency check failed"):
            return True
    return False


def _offline(error: BaseException | None) -> bool:
    from huggingface_hub.errors import OfflineModeIsEnabled

    return any(isinstance(cause, OfflineModeIsEnabled) for cause in _causes(error))


def _cached_copy_intact(path: Path) -> bool:
    """Does a cached file hash to the name of the blob it points at?

    The Hub cache names each blob after its ETag, which is the file's sha256 for LFS files and its git
    blob id for the others, so a copy cut short (or otherwise damaged) is caught without asking the Hub.
    A cache without symlinks, or an endpoint with other ETags, gives nothing to compare: trust the copy.
    """
    from huggingface_hub.utils.sha import git_hash, sha_fileobj

    if not path.is_symlink():
        return True
    blob = path.resolve()
    if not blob.is_file():
        return False
    if SHA256.fullmatch(blob.name):
        with open(blob, "rb") as handle:
            return sha_fileobj(handle).hex() == blob.name
    if COMMIT.fullmatch(blob.name):  # the same 40-hex shape as a commit: a git blob id
        return git_hash(blob.read_bytes()) == blob.name
    return True


def _discard(path: Path) -> None:
    """Remove a cached file and the blob behind it, so nothing can read it as complete."""
    if path.is_symlink():
        path.resolve().unlink(missing_ok=True)
    path.unlink(missing_ok=True)


class HubMirror:
    """The dataset repo on the Hugging Face Hub; each file is downloaded once and then read from cache.

    Downloads that meet a busy or unreachable Hub are tried again (``tries`` in all, waiting
    ``first_wait`` seconds, then twice as long each time, at most ``max_wait``) on top of the
    retries huggingface_hub makes itself. Each cached file is checked against its checksum before
    it is handed out; a damaged one is deleted and downloaded once more. The first file fixes the
    commit for the rest, so a split is read from one revision and cached files need no request.
    """

    tries = 4
    first_wait = 2.0
    max_wait = 30.0

    def __init__(self, repo_id: str = HUB_DATASET, cache_dir: str | Path | None = None, revision: str | None = None,
                 endpoint: str | None = None):
        self.repo_id, self.revision = repo_id, revision
        self.cache_dir = str(Path(cache_dir).expanduser()) if cache_dir else None
        self.endpoint = endpoint or os.environ.get("HF_ENDPOINT") or None
        self.commit = revision if revision and COMMIT.fullmatch(revision) else None
        self._checked: dict[str, Path] = {}  # files already verified by this mirror: neither asked for nor hashed again

    def __str__(self) -> str:
        return f"hf://datasets/{self.repo_id}"

    def fetch(self, link: str) -> Path:
        relative = str(_relative_parts(link))
        if relative in self._checked:
            return self._checked[relative]
        path = self._download(relative)
        if not _cached_copy_intact(path):
            path = self._replace(relative, path, "does not match its checksum")
        self._checked[relative] = path
        return path

    def fetch_again(self, link: str, problem: str) -> Path:
        """Throw away the cached copy of a file its reader found broken (``problem`` says how) and download it anew."""
        relative = str(_relative_parts(link))
        path = self._checked.pop(relative, None) or self._download(relative)
        path = self._replace(relative, path, problem)
        self._checked[relative] = path
        return path

    def _replace(self, relative: str, path: Path, problem: str) -> Path:
        _discard(path)
        try:
            path = self._download(relative, force=True)
        except DataError as err:
            raise DataError(f"the cached copy of {relative!r} {problem}, so it was removed; downloading it again "
                            f"failed: {err.reason}") from None
        if not _cached_copy_intact(path):
            raise DataError(f"{relative!r} from {self} does not match its checksum even after a fresh download; "
                            f"the file may be changing on the Hub: run the command again later")
        return path

    def _download(self, relative: str, force: bool = False) -> Path:
        import httpx
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import EntryNotFoundError

        if reads_fetched_files() and not force:  # in a launch, the node's first process may have it already
            from huggingface_hub.errors import LocalEntryNotFoundError

            try:
                path = Path(hf_hub_download(self.repo_id, relative, repo_type="dataset", cache_dir=self.cache_dir,
                                            revision=self.commit or self.revision, local_files_only=True))
            except LocalEntryNotFoundError:
                pass
            else:
                self._pin_commit(path, relative)
                return path
        wait, last = self.first_wait, None
        for attempt in range(1, self.tries + 1):
            try:
                path = Path(hf_hub_download(self.repo_id, relative, repo_type="dataset", cache_dir=self.cache_dir,
                                            revision=self.commit or self.revision, endpoint=self.endpoint,
                                            force_download=force))
            # the Hub's own errors are OSErrors; a network fault the client gave up on comes through as httpx's
            except (EntryNotFoundError, ValueError, OSError, httpx.HTTPError) as err:
                if not _transient(err):
                    raise self._permanent(relative, err) from None
                last = err
            else:
                self._pin_commit(path, relative)
                return path
            if attempt < self.tries:
                print(f"pmv2nb: downloading {relative!r} failed ({_short(last)}); try {attempt + 1} of "
                      f"{self.tries} in {wait:g} s", file=sys.stderr)
                time.sleep(wait)
                wait = min(self.max_wait, wait * 2)
        raise DataError(
            f"gave up downloading {relative!r} from {self.repo_id} after {self.tries} tries ({_short(last)}). "
            f"The Hub looks busy or unreachable: run the same command again later; files already downloaded stay in "
            f"the cache and are not fetched again. On a slow link raise HF_HUB_DOWNLOAD_TIMEOUT and "
            f"HF_HUB_ETAG_TIMEOUT (seconds); without the Hub use a local mirror (--source DIR)."
        )

    def _permanent(self, relative: str, err: BaseException) -> DataError:
        """The message for a failure no retry would fix."""
        from huggingface_hub.errors import (
            EntryNotFoundError, LocalEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError,
        )

        if isinstance(err, ValueError) and err.__cause__ is not None:  # a forced download wraps what went wrong
            err = err.__cause__
        if isinstance(err, RepositoryNotFoundError):  # a gated repo lands here too: both want a token
            return DataError(f"the Hub repo {self.repo_id} was not found (or needs a token: set HF_TOKEN)")
        if isinstance(err, RevisionNotFoundError):
            return DataError(f"revision {self.revision!r} of the Hub repo {self.repo_id} was not found")
        if _offline(err) or isinstance(err, LocalEntryNotFoundError):  # test before its parent EntryNotFoundError
            detail = "" if _offline(err) or err.__cause__ is None else f" ({_short(err.__cause__)})"
            return DataError(
                f"cannot download {relative!r} from {self.repo_id}: the Hub is unreachable or HF_HUB_OFFLINE=1 and "
                f"the file is not cached{detail}. Use --source data/mini (the embedded mini dataset) or a local mirror."
            )
        if isinstance(err, EntryNotFoundError):
            return DataError(f"file {relative!r} is not in the Hub repo {self.repo_id}")
        return DataError(f"cannot download {relative!r} from {self.repo_id}: {_short(err)}")

    def _pin_commit(self, path: Path, relative: str) -> None:
        """Read the commit out of the cache path (``snapshots/<commit>/<file>``) and ask for it from now on."""
        depth = len(PurePosixPath(relative).parts)
        if self.commit is None and len(path.parents) > depth and path.parents[depth].name == "snapshots":
            folder = path.parents[depth - 1].name
            self.commit = folder if COMMIT.fullmatch(folder) else None


def _short(error: BaseException | None) -> str:
    """The first line of an error, after its type."""
    if error is None:
        return "no error recorded"
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


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
