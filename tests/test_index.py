"""Versioned indices behind an alias, against the real Elasticsearch node."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from es_faq.engine.client import live_indices
from es_faq.errors import ConfigError, DataError, IndexMissing, SyncBusy
from es_faq.kb.faq import read_jsonl
from es_faq.kb.index import build, lock_alias, rollback, versions
from es_faq.sync.state import SyncState
from tests.conftest import DEMO_FAQS
from tests.fault_proxy import FaultProxy


def _faq(i, question, **extra):
    return json.dumps({"id": f"f{i}", "question": question, **extra}, ensure_ascii=False)


def _load(es, settings, analyzer, embedder, path, alias, **kwargs):
    return build(es, settings, read_jsonl(path), analyzer, embedder, alias=alias, progress=False, **kwargs)


def test_load_swaps_alias_and_keeps_previous_version(es, settings, analyzer, embedder, alias, tmp_jsonl):
    first = _load(es, settings, analyzer, embedder,
                  tmp_jsonl([_faq(1, "怎么还款", similar_questions=["如何还钱"]), _faq(2, "怎么退货")]), alias)
    assert (first.faqs, first.questions) == (2, 3)
    assert live_indices(es, alias) == [first.index]
    second = _load(es, settings, analyzer, embedder, tmp_jsonl([_faq(3, "发票怎么开")], "v2.jsonl"), alias)
    assert second.previous == [first.index]
    assert live_indices(es, alias) == [second.index]
    assert [v["live"] for v in versions(es, alias)] == [False, True]
    assert es.count(index=alias)["count"] == 1
    assert rollback(es, settings, alias) == {"alias": alias, "from": second.index, "to": first.index,
                                             "orphans_deleted": []}
    assert es.count(index=alias)["count"] == 2


def test_old_versions_are_pruned(es, settings, analyzer, embedder, alias, tmp_jsonl):
    path = tmp_jsonl([_faq(1, "怎么还款")])
    for _ in range(settings.index_keep_versions + 2):
        _load(es, settings, analyzer, embedder, path, alias)
    assert len(versions(es, alias)) == settings.index_keep_versions


def test_malformed_line_stops_load_and_leaves_alias_alone(es, settings, analyzer, embedder, alias, tmp_jsonl):
    good = _load(es, settings, analyzer, embedder, tmp_jsonl([_faq(1, "怎么还款")]), alias)
    bad = tmp_jsonl([_faq(2, "怎么退货"), '{"id": "x", "question": ', _faq(3, "发票")], "bad.jsonl")
    with pytest.raises(DataError, match="line 2: invalid JSON"):
        _load(es, settings, analyzer, embedder, bad, alias)
    assert live_indices(es, alias) == [good.index]
    assert [v["index"] for v in versions(es, alias)] == [good.index]  # the partial version is gone


def test_skip_bad_loads_the_rest_and_counts_skips(es, settings, analyzer, embedder, alias, tmp_jsonl):
    bad = tmp_jsonl([_faq(2, "怎么退货"), '{"id": "x", "question": ', _faq(3, "  "), _faq(4, "发票")])
    report = _load(es, settings, analyzer, embedder, bad, alias, skip_bad=True)
    assert report.faqs == 2
    assert [s.line for s in report.skipped] == [2, 3]
    assert report.as_dict()["skipped"] == 2


def test_empty_input_never_replaces_live_index(es, settings, analyzer, embedder, alias, tmp_jsonl):
    good = _load(es, settings, analyzer, embedder, tmp_jsonl([_faq(1, "怎么还款")]), alias)
    with pytest.raises(DataError, match="no valid FAQ"):
        _load(es, settings, analyzer, embedder, tmp_jsonl(["{}"], "empty.jsonl"), alias, skip_bad=True)
    assert live_indices(es, alias) == [good.index]


def test_rollback_without_history_is_a_clear_error(es, settings, alias):
    with pytest.raises(IndexMissing, match="does not exist"):
        rollback(es, settings, alias)


# --- aliases, writers and orphans (issue 12) ---------------------------------------------------------
def test_lines_no_index_can_hold_are_bad_records_with_their_line(es, settings, analyzer, embedder, alias,
                                                                  tmp_jsonl):
    # A lone surrogate gave a traceback; a 600-byte id or a 100k-character question failed the whole
    # load at the bulk write, --skip-bad or not.
    path = tmp_jsonl([_faq(1, "怎么还款"),
                      '{"id": "f2", "question": "\\ud800 怎么退货"}',  # the JSON escape of a lone surrogate
                      '{"id": "\\udfff", "question": "怎么退货"}',
                      json.dumps({"id": "x" * 600, "question": "怎么退货"}),
                      _faq(5, "还" * 100_000),
                      _faq(6, "怎么开发票", similar_questions=["票" * 20_000]),
                      _faq(7, "怎么改地址", category="c" * 40_000),
                      _faq(8, "发票")])
    with pytest.raises(DataError, match=r"line 2: question is not valid Unicode text .*--skip-bad"):
        _load(es, settings, analyzer, embedder, path, alias)
    report = _load(es, settings, analyzer, embedder, path, alias, skip_bad=True)
    assert report.faqs == 2 and [bad.line for bad in report.skipped] == [2, 3, 4, 5, 6, 7]
    reasons = [bad.reason for bad in report.skipped]
    assert "id is 600 bytes in UTF-8" in reasons[2] and "question is 300000 bytes" in reasons[3]
    assert es.count(index=alias)["count"] == 2


def test_aliases_that_share_a_prefix_never_touch_each_other(es, settings, analyzer, embedder, alias, tmp_jsonl):
    other = f"{alias}-2"  # its versions are `<alias>-2-<stamp>`: a prefix match would take them for ours
    theirs = _load(es, settings, analyzer, embedder,
                   tmp_jsonl([_faq(1, "怎么还款", similar_questions=["如何还钱", "还款方式"])], "theirs.jsonl"), other)
    SyncState(es, other, settings).save_watermark(theirs.index, {"updated_at": "2025-01-01T00:00:00", "id": 1})
    ours = [_load(es, settings, analyzer, embedder, tmp_jsonl([_faq(2, "怎么退货")], f"v{i}.jsonl"), alias).index
            for i in range(settings.index_keep_versions + 1)]

    assert live_indices(es, other) == [theirs.index]  # not pruned as an old version of ours
    assert es.indices.exists(index=f"{other}-sync-state")  # nor their lock and watermarks
    assert [v["index"] for v in versions(es, alias)] == ours[1:]
    # One FAQ with three questions is one FAQ, not the four Lucene documents the cat API counts.
    assert [(v["index"], v["faqs"]) for v in versions(es, other)] == [(theirs.index, 1)]
    assert rollback(es, settings, alias)["to"] == ours[1]
    with pytest.raises(IndexMissing, match="nothing to roll back to"):
        rollback(es, settings, alias)  # never onto the other alias's index
    assert live_indices(es, other) == [theirs.index]


@pytest.mark.parametrize("name", ["faq-sync-state", "faq*", "FAQ", "faq,other", "faq-20250101-120000-000000", "-faq"])
def test_an_alias_that_could_claim_another_aliass_indices_is_refused(es, settings, analyzer, embedder, name,
                                                                     tmp_jsonl):
    with pytest.raises(ConfigError, match="is not usable"):
        _load(es, settings, analyzer, embedder, tmp_jsonl([_faq(1, "怎么还款")]), name)


@pytest.mark.parametrize("name", ["es-faq-dict", "es-faq-vocab", "es-faq-vectors", "es-faq-jobs", "es-faq-querylog",
                                  "es-faq-querylog-2026.01.01", "es-faq-preview-0123456789ab"])
def test_es_faqs_own_indices_are_refused_as_aliases(es, settings, analyzer, embedder, name, tmp_jsonl):
    # `--alias es-faq-dict` was accepted: the dictionaries' index became a FAQ alias's.
    with pytest.raises(ConfigError, match="one of es-faq's own indices"):
        _load(es, settings, analyzer, embedder, tmp_jsonl([_faq(1, "怎么还款")]), name)
    with pytest.raises(ConfigError, match="index_alias=.* one of es-faq's own indices"):
        settings.replace(index_alias=name)
    assert not es.indices.exists_alias(name=name)


def test_one_writer_at_a_time_per_alias(es, settings, analyzer, embedder, alias, tmp_jsonl):
    path = tmp_jsonl([_faq(1, "怎么还款")])
    impatient = settings.replace(writer_lock_ttl_s=1.0)  # how long a load waits for the lock
    with lock_alias(es, settings, alias, "full")[0]:
        started = time.monotonic()
        with pytest.raises(SyncBusy, match=r"another writer \(full, pid \d+ on .+\) holds the lock on"):
            _load(es, impatient, analyzer, embedder, path, alias)
        assert 1.0 <= time.monotonic() - started < 5
        with pytest.raises(SyncBusy):
            rollback(es, impatient, alias)
    assert versions(es, alias) == []  # the refused load created nothing
    loaded = _load(es, impatient, analyzer, embedder, path, alias)  # released: the next writer goes ahead
    assert live_indices(es, alias) == [loaded.index]


def _building(es, alias):
    for v in versions(es, alias):
        if not v["complete"]:
            stats = es.indices.stats(index=v["index"], metric="indexing")["indices"].get(v["index"])
            if stats and stats["primaries"]["indexing"]["index_total"] > 0:
                return v["index"]
    return None


def _killed_load(es, alias, path) -> str:
    """Start `es-faq index load` as a process, SIGKILL it once its new version holds documents; the orphan's name."""
    env = {**os.environ, "ES_FAQ_WRITER_LOCK_TTL_S": "2"}  # the dead loader's lease runs out quickly
    proc = subprocess.Popen([sys.executable, "-m", "es_faq", "index", "load", str(path), "--alias", alias],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        while not (orphan := _building(es, alias)):
            assert proc.poll() is None and time.monotonic() < deadline, "the load ended before it could be killed"
            time.sleep(0.1)
    finally:
        proc.kill()
        proc.wait()
    return orphan


def test_a_load_stalled_past_its_lease_stops_with_a_lost_lock(es, settings, analyzer, embedder, alias, tmp_jsonl):
    """SIGSTOP of a real `index load` until its lease runs out; the next writer deletes its version; on SIGCONT
    it must stop with the lost-lock error, not write on, re-create its index and fail on the mapping or count.

    The loader reaches the node through the fault proxy (tests/fault_proxy.py), which after the stall holds
    the lease's own requests unanswered: its heartbeat cannot learn from Elasticsearch that the lease was
    taken, so only the lease's expiry by the clock can stop the loader. Without the proxy the heartbeat
    usually learned it first after SIGCONT, and the test passed on the code that trusted the heartbeat alone."""
    big = tmp_jsonl([_faq(i, f"第{i}号业务怎么办理") for i in range(1000)], "big.jsonl")
    proxy = FaultProxy(settings.es_urls[0]).start()
    # A long request timeout: the held heartbeat must not give up (and so learn the loss) on its own.
    env = {**os.environ, "ES_FAQ_ES_URL": proxy.url, "ES_FAQ_WRITER_LOCK_TTL_S": "2", "ES_FAQ_ES_TIMEOUT_S": "600"}
    proc = subprocess.Popen([sys.executable, "-m", "es_faq", "index", "load", str(big), "--alias", alias],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 180
        while not (stalled := _building(es, alias)):
            assert proc.poll() is None and time.monotonic() < deadline, "the load ended before it could be stopped"
            time.sleep(0.1)
        proc.send_signal(signal.SIGSTOP)
        try:
            time.sleep(3)  # past the 2 s lease
            report = _load(es, settings, analyzer, embedder, tmp_jsonl([_faq(1, "怎么还款")], "small.jsonl"), alias)
            assert report.orphans_deleted == [stalled]
            proxy.only, proxy.fault = "-sync-state/", "hang"
        finally:
            proc.send_signal(signal.SIGCONT)
        # The loader's own clean-up (it deletes its version when it stops) says it has stopped writing;
        # then the held heartbeat is let go, so that the process can end.
        deletion = f"DELETE /{stalled}"
        while deletion not in proxy.paths and proc.poll() is None and time.monotonic() < deadline + 300:
            time.sleep(0.1)
        proxy.fault = "pass"
        _, err = proc.communicate(timeout=300)
    finally:
        proxy.stop()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 9, err
    assert "lost the writer lock" in err and "mapping" not in err and "Traceback" not in err
    assert live_indices(es, alias) == [report.index]
    assert not es.indices.exists(index=stalled)


def test_every_writer_clears_a_killed_loads_orphan_first(es, settings, analyzer, embedder, alias, tmp_jsonl):
    first = _load(es, settings, analyzer, embedder, tmp_jsonl([_faq(1, "怎么还款")], "a.jsonl"), alias).index
    second = _load(es, settings, analyzer, embedder, tmp_jsonl([_faq(2, "怎么退货")], "b.jsonl"), alias).index
    big = tmp_jsonl([_faq(i, f"第{i}号业务怎么办理") for i in range(2000)], "big.jsonl")

    orphan = _killed_load(es, alias, big)
    assert live_indices(es, alias) == [second]
    rolled = rollback(es, settings, alias)  # waits out the dead loader's lease, then clears its version
    assert (rolled["to"], rolled["orphans_deleted"]) == (first, [orphan])
    assert not es.indices.exists(index=orphan)

    orphan = _killed_load(es, alias, big)
    report = _load(es, settings, analyzer, embedder, tmp_jsonl([_faq(3, "发票")], "c.jsonl"), alias)
    assert report.orphans_deleted == [orphan]
    assert all(v["complete"] for v in versions(es, alias))


def test_force_merge_leaves_one_segment_per_shard_before_the_swap(es, settings, analyzer, embedder, alias):
    merged = settings.replace(index_force_merge=True, index_shards=2)
    report = build(es, merged, read_jsonl(DEMO_FAQS), analyzer, embedder, alias=alias, progress=False)
    assert report.merge_seconds is not None and "merge_seconds" in report.as_dict()
    segments = es.indices.segments(index=report.index).body["indices"][report.index]["shards"]
    assert all(len(copy["segments"]) <= 1 for copies in segments.values() for copy in copies)
    assert "merge_seconds" not in build(es, settings, read_jsonl(DEMO_FAQS), analyzer, embedder, alias=alias,
                                        progress=False).as_dict()  # off by default: no merge
