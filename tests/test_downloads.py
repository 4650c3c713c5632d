"""The Hub route under a flaky network: retries, damaged cached files, and resuming a cut-off ``data check``.

The real ``huggingface_hub`` client downloads from a loopback stand-in (``hub_stub.HubStub``) serving
the mini dataset, so its cache and its own retries run for real. Waits are recorded, not slept.
"""

import hashlib
import json
import time
from types import SimpleNamespace

import pytest

from hub_stub import HubStub
from pmv2nb import cli
from pmv2nb.data import DataError, load_split
from pmv2nb.data.histories import HistoryStore
from pmv2nb.data.sources import HubMirror, _cached_copy_intact


@pytest.fixture
def hub(request, monkeypatch, tmp_path, mini_root):
    """A running stub behind HF_ENDPOINT, the client online, and every backoff wait recorded instead of slept."""
    import huggingface_hub.constants
    import huggingface_hub.file_download
    import huggingface_hub.utils._http

    from pmv2nb.data import sources

    def clock(record):
        shim = SimpleNamespace(**{name: getattr(time, name) for name in dir(time) if not name.startswith("_")})
        shim.sleep = record.append
        return shim

    client_waits, our_waits = [], []
    monkeypatch.setattr(huggingface_hub.utils._http, "time", clock(client_waits))
    monkeypatch.setattr(huggingface_hub.file_download, "time", clock(client_waits))
    monkeypatch.setattr(sources, "time", clock(our_waits))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)  # conftest turns it on for the session
    monkeypatch.setattr(HubMirror, "first_wait", 0.5)
    with HubStub(mini_root, etags=getattr(request, "param", "hash")) as stub:
        monkeypatch.setenv("HF_ENDPOINT", stub.url)
        stub.cache, stub.waits = tmp_path / "hf-cache", our_waits
        yield stub


@pytest.fixture(scope="module")
def links(mini_root):
    questions = load_split(mini_root, "benchmark").questions
    return list(questions["chat_history_32k_link"].drop_duplicates())


def snapshot_files(cache):
    return sorted(p for p in cache.rglob("*") if "snapshots" in p.parts and (p.is_symlink() or p.is_file()))


def test_a_busy_hub_is_tried_again_until_the_file_arrives(hub, links, mini_root):
    script = {"HEAD": [503, "drop"], "GET": [503, "cut"]}
    hub.fault = lambda method, path, answered: script[method].pop(0) if script[method] else None
    history = HistoryStore(HubMirror(cache_dir=hub.cache)).get(links[0])
    expected = json.loads((mini_root / links[0]).read_text(encoding="utf-8"))
    assert list(history.messages) == expected["chat_history"]
    outcomes = [(method, outcome) for method, _, outcome in hub.log]
    # the client retries the HEAD and the cut-off body itself; the 503 on the GET is ours to retry
    assert outcomes == [("HEAD", 503), ("HEAD", "drop"), ("HEAD", 200), ("GET", 503),
                        ("HEAD", 200), ("GET", "cut"), ("GET", 200)]
    assert hub.waits == [0.5]
    assert [p.resolve().read_bytes() for p in snapshot_files(hub.cache)] == [(mini_root / links[0]).read_bytes()]
    assert not list(hub.cache.rglob("*.incomplete"))


def test_a_hub_that_stays_down_is_given_up_with_a_bounded_backoff_and_advice(hub, links, monkeypatch):
    monkeypatch.setattr(HubMirror, "tries", 5)
    monkeypatch.setattr(HubMirror, "max_wait", 1.0)
    hub.fault = lambda method, path, answered: 503 if method == "GET" else None
    with pytest.raises(DataError, match="gave up downloading .* after 5 tries") as err:
        HubMirror(cache_dir=hub.cache).fetch(links[0])
    assert links[0] in str(err.value) and "run the same command again" in str(err.value)
    assert "HF_HUB_DOWNLOAD_TIMEOUT" in str(err.value)
    assert len(hub.gets(503)) == 5 and hub.waits == [0.5, 1.0, 1.0, 1.0]
    assert not snapshot_files(hub.cache)


def test_a_missing_file_is_not_retried(hub):
    with pytest.raises(DataError, match="not in the Hub repo"):
        HubMirror(cache_dir=hub.cache).fetch("data/chat_history_32k/nobody.json")
    assert [method for method, _, _ in hub.log] == ["HEAD"] and hub.waits == []


# "hash": the cached copy fails its checksum; "opaque": no checksum to compare, the broken JSON gives it away
@pytest.mark.parametrize("hub", ["hash", "opaque"], indirect=True)
def test_a_cached_history_cut_short_is_downloaded_again_and_then_reads(hub, links):
    first = HistoryStore(HubMirror(cache_dir=hub.cache)).get(links[0])
    blob = HubMirror(cache_dir=hub.cache).fetch(links[0]).resolve()
    whole = blob.read_bytes()
    blob.write_bytes(whole[:len(whole) // 2])
    hub.log.clear()
    again = HistoryStore(HubMirror(cache_dir=hub.cache)).get(links[0])
    assert again.messages == first.messages
    assert hub.gets() == [links[0]] and blob.read_bytes() == whole


def test_a_cached_table_cut_at_a_line_end_fails_its_checksum_and_is_downloaded_again(hub):
    rows = len(load_split("hub", "benchmark", cache_dir=hub.cache))
    blob = next(p for p in snapshot_files(hub.cache) if p.name == "benchmark.csv").resolve()
    whole = blob.read_bytes()
    blob.write_bytes(whole[:whole.index(b"\n", len(whole) // 2) + 1])  # still a CSV, with half the rows
    hub.log.clear()
    assert len(load_split("hub", "benchmark", cache_dir=hub.cache)) == rows
    assert hub.gets() == ["benchmark/text/benchmark.csv"] and blob.read_bytes() == whole


def test_a_history_broken_at_the_source_is_fetched_once_more_then_named(hub, links, mini_root):
    hub.bodies[links[1]] = (mini_root / links[1]).read_bytes()[:500]  # its ETag matches: only the JSON tells
    store = HistoryStore(HubMirror(cache_dir=hub.cache))
    with pytest.raises(DataError, match="still not valid JSON after a fresh download") as err:
        store.get(links[1], table="benchmark.csv", row=3, column="chat_history_32k_link")
    assert links[1] in str(err.value) and (err.value.row, err.value.column) == (3, "chat_history_32k_link")
    assert hub.gets() == [links[1], links[1]]


def test_a_local_history_cut_short_is_named_with_advice(mini_copy, links):
    path = mini_copy / links[0]
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(DataError, match="not valid JSON.*copy it again") as err:
        load_split(mini_copy, "benchmark").chat_history(0)
    assert links[0] in str(err.value) and err.value.row == 0


def test_an_interrupted_data_check_resumes_without_fetching_what_it_has(hub, monkeypatch, capsys, mini_root):
    monkeypatch.setattr(HubMirror, "tries", 2)
    complete_before_cut = 5  # the table and four histories, then the network goes away mid-file

    def outage(method, path, answered):
        if answered < complete_before_cut:
            return None
        if not hub.gets("cut"):
            return "cut" if method == "GET" else None
        return "drop"

    hub.fault = outage
    command = ["data", "check", "--source", "hub", "--cache-dir", str(hub.cache), "--split", "benchmark"]
    assert cli.main(command) == 1
    err = capsys.readouterr().err
    complete, cut = hub.gets(), hub.gets("cut")
    assert len(complete) == complete_before_cut and len(cut) == 1
    assert f"gave up downloading {cut[0]!r}" in err and "run the same command again" in err
    cached = snapshot_files(hub.cache)
    assert sorted(str(p).split("snapshots/")[1].split("/", 1)[1] for p in cached) == sorted(complete)
    assert all(_cached_copy_intact(p) for p in cached)
    # what a kill -9 mid-download leaves behind: half the cut file under a temporary name, never taken for the blob
    body = (mini_root / cut[0]).read_bytes()
    blob = cached[0].resolve().parent / hashlib.sha256(body).hexdigest()
    blob.with_name(blob.name + ".deadbeef.incomplete").write_bytes(body[:len(body) // 2])

    hub.fault, hub.log = None, []
    assert cli.main(command) == 0
    report = json.loads(capsys.readouterr().out)
    assert all(report["histories"][size]["files_found"] == report["histories"][size]["distinct_files"]
               for size in ("32k", "128k"))
    fetched = hub.gets()
    assert cut[0] in fetched and len(fetched) == len(set(fetched)) and blob.read_bytes() == body
    assert len(complete) + len(fetched) == 1 + sum(report["histories"][s]["distinct_files"] for s in ("32k", "128k"))
    # no request at all for a history already complete; the table gets one HEAD, which fixes the commit
    asked = [(method, path) for method, path, _ in hub.log]
    assert not {path for _, path in asked} & set(complete[1:])
    assert asked.count(("HEAD", complete[0])) == 1 and ("GET", complete[0]) not in asked
