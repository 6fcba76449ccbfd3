"""MySQL sync against the real MariaDB (scripts/mariadb) and the real Elasticsearch node.

Each test gets a database of its own (es_faq_test_<hex>) with sql/schema.sql applied, and an alias
of its own. Faults are produced for real: SIGKILL and SIGSTOP of a running `es-faq sync`, closed
ports, open transactions, rows a legacy admin tool could have written.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from urllib.parse import urlparse

import pymysql
import pytest

from es_faq.config.settings import REPO_ROOT
from es_faq.engine.client import live_indices
from es_faq.errors import ConfigError, IndexMissing, SourceUnavailable, SyncBusy
from es_faq.kb.faq import Faq, read_jsonl
from es_faq.kb.index import build, lock_alias, rollback, versions
from es_faq.sync.run import Sync
from es_faq.sync.source import MySqlSource
from tests.conftest import DEMO_FAQS


class Db:
    """One throwaway database on the test MariaDB, with the documented schema."""

    def __init__(self, base_url: str):
        url = urlparse(base_url)
        self.name = f"es_faq_test_{uuid.uuid4().hex[:8]}"
        self.url = url._replace(path="/" + self.name).geturl()
        self._args = {"host": url.hostname, "port": url.port or 3306, "user": url.username,
                      "password": url.password, "charset": "utf8mb4", "autocommit": True}
        with pymysql.connect(**self._args) as conn, conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {self.name} CHARACTER SET utf8mb4")
        self.conn = self.connect()
        sql = (REPO_ROOT / "sql" / "schema.sql").read_text(encoding="utf-8")
        body = "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))
        for statement in filter(None, (s.strip() for s in body.split(";"))):
            self.run(statement)

    def connect(self):
        return pymysql.connect(**self._args, database=self.name)

    def run(self, sql: str, params=None) -> list:
        with self.conn.cursor() as cur:
            cur.execute(sql, params)
            return list(cur.fetchall())

    def add(self, faqs: list[dict], first_id: int = 1) -> None:
        with self.conn.cursor() as cur:
            cur.executemany("INSERT INTO faq (id, question, answer, category) VALUES (%s, %s, %s, %s)",
                            [(first_id + i, f["question"], f.get("answer", ""), f.get("category", ""))
                             for i, f in enumerate(faqs)])
            cur.executemany("INSERT INTO faq_similar_question (faq_id, question) VALUES (%s, %s)",
                            [(first_id + i, s) for i, f in enumerate(faqs) for s in f.get("similar_questions", [])])

    def drop(self) -> None:
        self.conn.close()
        with pymysql.connect(**self._args) as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {self.name}")


def demo(n: int) -> list[dict]:
    return [{"question": f.question, "similar_questions": f.similar_questions, "answer": f.answer,
             "category": f.category} for f in list(read_jsonl(DEMO_FAQS))[:n]]


def synthetic(n: int, start: int = 0) -> list[dict]:
    """One short question each: cheap to embed, many rows."""
    return [{"question": f"第{i}号业务怎么办理", "answer": f"答案{i}"} for i in range(start, start + n)]


@pytest.fixture
def db(settings):
    base = os.environ.get("ES_FAQ_MYSQL_URL") or settings.mysql_url
    if not base:
        pytest.fail("ES_FAQ_MYSQL_URL is not set: run the tests with scripts/test, which starts MariaDB")
    database = Db(base)
    yield database
    database.drop()


@pytest.fixture
def make_sync(es, settings, analyzer, embedder, db, alias):
    """A Sync of this test's database into this test's alias, sharing the session's model."""
    def make(**changes) -> Sync:
        return Sync(settings.replace(**{"mysql_url": db.url, **changes}), alias=alias, client=es, analyzer=analyzer,
                    embedder=embedder)
    return make


@pytest.fixture
def sync_cli(alias):
    """Start `es-faq sync ...` as a real process; any still running are killed before the alias is dropped."""
    started: list[subprocess.Popen] = []

    def start(*args, env: dict) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-m", "es_faq", "sync", *args], env={**os.environ, **env},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        started.append(proc)
        return proc
    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def wait_for(predicate, timeout_s: float, what: str, every_s: float = 0.05):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def answers(es, alias: str) -> dict[str, str]:
    es.indices.refresh(index=alias)
    hits = es.search(index=alias, size=1000, source=["answer"])["hits"]["hits"]
    return {h["_id"]: h["_source"]["answer"] for h in hits}


def search_ids(searcher, alias: str, query: str) -> list[str]:
    return [h.faq_id for h in searcher.search(query, 5, "bm25", index=alias).hits]


# --- the happy path ------------------------------------------------------------------------------------
def test_full_then_incremental_follows_every_kind_of_edit(db, make_sync, es, searcher, alias):
    db.add(demo(6))
    sync = make_sync()
    full = sync.full(progress=False)
    assert (full.upserted, full.skipped, full.extra["rows_read"]) == (6, [], 6)
    assert full.extra["questions"] == sum(1 + len(f["similar_questions"]) for f in demo(6))
    assert search_ids(searcher, alias, "忘记支付密码怎么办")[0] == "1"
    assert sync.check()["differences"] == 0

    db.run("UPDATE faq SET answer = '新的答案' WHERE id = 1")
    db.run("UPDATE faq SET deleted = 1 WHERE id = 2")
    db.run("UPDATE faq SET enabled = 0 WHERE id = 3")
    db.run("INSERT INTO faq_similar_question (faq_id, question) VALUES (4, '发票开错了能重开吗')")  # trigger
    db.run("DELETE FROM faq WHERE id = 5")  # a hard delete: invisible to the watermark
    db.add([{"question": "积分可以兑换什么", "answer": "礼品"}], first_id=7)
    report = sync.incremental()
    assert (report.upserted, report.deleted) == (4, 1)
    docs = answers(es, alias)
    assert docs["1"] == "新的答案" and "2" not in docs and "7" in docs
    assert es.get(index=alias, id="3")["_source"]["enabled"] is False  # kept, but never served
    assert "3" not in search_ids(searcher, alias, db.run("SELECT question FROM faq WHERE id = 3")[0][0])
    assert "4" in search_ids(searcher, alias, "发票开错了能重开吗")

    again = sync.incremental()  # the overlap window re-reads, the hashes say nothing changed
    assert (again.upserted, again.deleted, again.changed) == (0, 0, False)

    check = sync.check()
    assert (check["differences"], check["extra_in_es"]) == (1, ["5"])
    assert sync.check(repair=True)["repaired"] == {"upserted": 0, "deleted": 1}
    assert sync.check()["differences"] == 0


def test_rows_sharing_one_timestamp_span_pages_without_loss(db, make_sync, es, alias):
    db.add(synthetic(7))
    sync = make_sync(mysql_batch_size=2, mysql_overlap_s=0)
    sync.full(progress=False)
    db.run("UPDATE faq SET answer = CONCAT(answer, '!')")  # one statement: one updated_at for all
    assert len(db.run("SELECT DISTINCT updated_at FROM faq")) == 1
    report = sync.incremental()
    assert report.upserted == 7
    assert all(a.endswith("!") for a in answers(es, alias).values())
    assert report.watermark["id"] == 7


def test_late_commit_is_caught_by_the_overlap_window(db, make_sync, es, alias):
    db.add(synthetic(3))
    sync = make_sync()
    sync.full(progress=False)
    late = db.connect()
    with late.cursor() as cur:  # an admin-tool transaction that stays open...
        cur.execute("BEGIN")
        cur.execute("UPDATE faq SET answer = 'late' WHERE id = 1")
    time.sleep(0.01)
    db.run("UPDATE faq SET answer = 'early' WHERE id = 2")  # ...while a newer change commits first
    assert sync.incremental().upserted == 1
    late.commit()
    late.close()
    # The watermark has passed row 1's updated_at; without the overlap the change would be lost.
    assert make_sync(mysql_overlap_s=0).incremental().upserted == 0
    assert sync.incremental().upserted == 1
    assert answers(es, alias)["1"] == "late"


def test_column_mapping_reads_a_legacy_schema_and_reports_bad_rows(db, make_sync, es, alias):
    # A legacy admin tool: string ids, the question in a VARBINARY column (bytes, never checked as
    # UTF-8 by MySQL), no soft delete, similar questions in a table of its own naming.
    db.run("CREATE TABLE kb_item (code VARCHAR(20) PRIMARY KEY, q VARBINARY(4000), body MEDIUMTEXT, "
           "status TINYINT NOT NULL DEFAULT 1, modified DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) "
           "ON UPDATE CURRENT_TIMESTAMP(3))")
    db.run("CREATE TABLE kb_alias (seq INT AUTO_INCREMENT PRIMARY KEY, item VARCHAR(20), txt VARBINARY(4000))")
    rows = [("A1", "如何开发票".encode(), "在订单页申请"),
            ("A2", b"   ", "blank question"),
            ("A3", "如何退款".encode(), "x" * 100_001),
            ("A4", b"\xe5\xa6\x82\xff\xfe", "bytes from a latin1 page"),
            ("A5", "怎么改地址".encode(), "在订单页修改"),
            ("A6", b"q" * 1001, "too long"),
            ("A7", None, "no question")]
    db.run("INSERT INTO kb_item (code, q, body) VALUES " + ", ".join(["(%s, %s, %s)"] * len(rows)),
           [v for row in rows for v in row])
    aliases = [("A1", "发票怎么开".encode()), ("A5", "地址写错了".encode()), ("A5", "地址写错了".encode()),
               ("A5", "怎么改地址".encode()), ("A5", b"  "), ("A5", b"\xc3\x28")]
    db.run("INSERT INTO kb_alias (item, txt) VALUES " + ", ".join(["(%s, %s)"] * len(aliases)),
           [v for row in aliases for v in row])
    sync = make_sync(mysql_faq_table="kb_item", mysql_id_column="code", mysql_question_column="q",
                     mysql_answer_column="body", mysql_category_column="", mysql_enabled_column="status",
                     mysql_deleted_column="", mysql_updated_at_column="modified", mysql_similar_table="kb_alias",
                     mysql_similar_faq_id_column="item", mysql_similar_question_column="txt",
                     mysql_similar_order_column="seq")
    report = sync.full(progress=False)
    assert report.upserted == 2
    assert [str(b) for b in report.skipped] == [
        "id A2: empty question",
        "id A3: answer is 100001 characters; the limit is ES_FAQ_MYSQL_MAX_ANSWER_CHARS=100000",
        "id A4: question is not valid UTF-8 (byte 0xff at offset 3)",
        "id A6: question is 1001 characters; the limit is ES_FAQ_MYSQL_MAX_QUESTION_CHARS=1000",
        "id A7: empty question"]
    assert report.cleaned == ["id A5: similar question 5 is not valid UTF-8 (byte 0xc3 at offset 0); dropped it",
                              "id A5: dropped 3 blank or duplicate similar question(s)"]
    assert [q["text"] for q in es.get(index=alias, id="A5")["_source"]["questions"]] == ["怎么改地址", "地址写错了"]
    check = sync.check()
    assert (check["differences"], check["mysql_skipped"]) == (0, 5)

    db.run("UPDATE kb_item SET q = %s WHERE code = 'A2'", ("怎么联系客服".encode(),))
    db.run("UPDATE kb_item SET q = '' WHERE code = 'A1'")  # edited into a bad state: leaves the index
    incremental = sync.incremental()
    assert (incremental.upserted, incremental.deleted) == (1, 1)
    # Bad rows re-read in the overlap window were reported by the full sync; only A1 is news.
    assert [str(b) for b in incremental.skipped] == ["id A1: empty question"]
    assert sorted(answers(es, alias)) == ["A2", "A5"]


def test_cli_lists_skipped_rows_and_check_exits_1_on_differences(db, make_sync, es, alias, sync_cli):
    db.add(demo(2) + [{"question": " ", "answer": "x"}])
    env = {"ES_FAQ_MYSQL_URL": db.url, "ES_FAQ_INDEX_ALIAS": alias}
    full = sync_cli("full", "--no-progress", env=env)
    out, err = full.communicate(timeout=300)
    assert full.returncode == 0, err
    assert json.loads(out)["upserted"] == 2
    assert "skipped id 3: empty question" in err
    db.run("DELETE FROM faq WHERE id = 1")
    check = sync_cli("check", env=env)
    out, err = check.communicate(timeout=120)
    assert check.returncode == 1 and json.loads(out)["extra_in_es"] == ["1"]


# --- faults --------------------------------------------------------------------------------------------
def test_killed_full_sync_leaves_the_old_version_live_and_never_a_rollback_target(
        db, make_sync, es, settings, analyzer, embedder, searcher, alias, sync_cli):
    db.add(synthetic(20))
    old = make_sync().full(progress=False).index
    db.add(synthetic(380, start=20), first_id=21)
    env = {"ES_FAQ_MYSQL_URL": db.url, "ES_FAQ_INDEX_ALIAS": alias, "ES_FAQ_WRITER_LOCK_TTL_S": "3"}
    proc = sync_cli("full", "--no-progress", env=env)

    def half_built():
        building = [v["index"] for v in versions(es, alias) if not v["complete"]]
        if building:
            stats = es.indices.stats(index=building[0], metric="indexing")["indices"].get(building[0])
            return stats and stats["primaries"]["indexing"]["index_total"] > 0 and building[0]
    orphan = wait_for(half_built, 120, "the new version to hold documents")
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    assert live_indices(es, alias) == [old]
    assert es.count(index=alias)["count"] == 20
    assert "26" not in search_ids(searcher, alias, "第25号业务怎么办理")
    with pytest.raises(SyncBusy, match="holds the lock"):  # the dead holder's lease has not expired yet
        make_sync().incremental()

    # An `index load` waits out the dead holder's lease (the one writer lock), then clears the orphan.
    loaded = build(es, settings, [Faq("x1", "临时问题")], analyzer, embedder, alias=alias, progress=False)
    newer = loaded.index
    assert loaded.orphans_deleted == [orphan]
    assert {v["index"]: v["complete"] for v in versions(es, alias)} == {old: True, newer: True}
    assert rollback(es, settings, alias) == {"alias": alias, "from": newer, "to": old, "orphans_deleted": []}

    rerun = sync_cli("full", "--no-progress", env=env)
    out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    report = json.loads(out)
    assert report["orphans_deleted"] == [] and report["upserted"] == 400
    assert [v["index"] for v in versions(es, alias)] == [newer, report["index"]]
    assert live_indices(es, alias) == [report["index"]]
    assert search_ids(searcher, alias, "第25号业务怎么办理")[0] == "26"
    assert make_sync().check()["differences"] == 0


def test_a_stalled_full_sync_that_lost_its_lock_stops_without_swapping(db, make_sync, es, alias, sync_cli):
    db.add(synthetic(20))
    old = make_sync().full(progress=False).index
    db.add(synthetic(280, start=20), first_id=21)
    env = {"ES_FAQ_MYSQL_URL": db.url, "ES_FAQ_INDEX_ALIAS": alias, "ES_FAQ_WRITER_LOCK_TTL_S": "2"}
    proc = sync_cli("full", "--no-progress", env=env)
    wait_for(lambda: any(not v["complete"] for v in versions(es, alias)), 120, "the build to start")
    proc.send_signal(signal.SIGSTOP)  # a stalled holder: its heartbeat stops, its lease runs out
    try:
        time.sleep(3)
        assert make_sync().incremental().upserted == 280  # takes the expired lease over and does the work
    finally:
        proc.send_signal(signal.SIGCONT)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 9, err
    assert "lost the writer lock" in err
    assert live_indices(es, alias) == [old]
    assert [v["index"] for v in versions(es, alias)] == [old]  # the stalled build removed its index


def test_killed_incremental_run_is_resumed_from_its_watermark(db, make_sync, es, alias, sync_cli):
    db.add(synthetic(120))
    make_sync().full(progress=False)
    db.run("UPDATE faq SET answer = CONCAT('新', answer), updated_at = updated_at + INTERVAL id SECOND")
    env = {"ES_FAQ_MYSQL_URL": db.url, "ES_FAQ_INDEX_ALIAS": alias, "ES_FAQ_MYSQL_BATCH_SIZE": "10",
           "ES_FAQ_MYSQL_OVERLAP_S": "0", "ES_FAQ_WRITER_LOCK_TTL_S": "2"}
    state = f"{alias}-sync-state"
    live = live_indices(es, alias)[0]
    proc = sync_cli("incremental", env=env)
    wait_for(lambda: es.options(ignore_status=404).get(index=state, id=f"watermark:{live}").get("found"),
             120, "the first page's watermark")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    mark = es.get(index=state, id=f"watermark:{live}")["_source"]["mark"]
    done = {k for k, v in answers(es, alias).items() if v.startswith("新")}
    assert mark["id"] % 10 == 0 and mark["id"] < 120  # the mark sits on a written page boundary
    assert set(map(str, range(1, mark["id"] + 1))) <= done

    resumed = wait_for(lambda: _try_incremental(make_sync(mysql_overlap_s=0, mysql_batch_size=10)), 10,
                       "the dead run's lease to expire", every_s=0.5)
    assert resumed.upserted == 120 - len(done)
    assert all(v.startswith("新") for v in answers(es, alias).values())
    assert make_sync().check()["differences"] == 0


def _try_incremental(sync):
    try:
        return sync.incremental()
    except SyncBusy:
        return None


def test_runs_at_once_never_corrupt_the_index(db, make_sync, es, alias, sync_cli):
    db.add(synthetic(40))
    make_sync().full(progress=False)
    db.run("UPDATE faq SET answer = CONCAT(answer, '改')")
    env = {"ES_FAQ_MYSQL_URL": db.url, "ES_FAQ_INDEX_ALIAS": alias}
    procs = [sync_cli("incremental", env=env) for _ in range(3)]
    codes = [p.wait(timeout=300) for p in procs]
    assert set(codes) <= {0, 75} and 0 in codes, [p.stderr.read() for p in procs]
    assert all(v.endswith("改") for v in answers(es, alias).values())
    assert make_sync().check()["differences"] == 0
    assert [v["index"] for v in versions(es, alias)] == live_indices(es, alias)  # the state index is no version


def test_lock_is_exclusive_and_released(make_sync):
    sync = make_sync()
    with lock_alias(sync.client, sync.settings, sync.alias, "one")[0]:
        with pytest.raises(SyncBusy, match=r"\(one, pid \d+"):
            lock_alias(sync.client, sync.settings, sync.alias, "two")
    lock_alias(sync.client, sync.settings, sync.alias, "three")[0].release()


def test_configuration_mistakes_say_what_to_fix(db, make_sync, es, settings, analyzer, embedder, alias):
    with pytest.raises(ConfigError, match="ES_FAQ_MYSQL_URL is not set"):
        make_sync(mysql_url="")
    with pytest.raises(ConfigError, match="Unknown column.*ES_FAQ_MYSQL_\\* table and column settings"):
        make_sync(mysql_answer_column="reply").full(progress=False)
    with pytest.raises(IndexMissing, match="run `es-faq sync full` first"):
        make_sync().incremental()
    build(es, settings, [Faq("x1", "临时问题")], analyzer, embedder, alias=alias, progress=False)  # `index load`
    with pytest.raises(IndexMissing, match="no sync watermark"):
        make_sync().incremental()


def test_unreachable_mysql_and_elasticsearch_are_one_clear_error(db, settings, alias, sync_cli):
    bad_mysql = sync_cli("full", env={"ES_FAQ_MYSQL_URL": "mysql://esfaq:s3cret@127.0.0.1:9/x",
                                      "ES_FAQ_INDEX_ALIAS": alias})
    _, err = bad_mysql.communicate(timeout=120)
    assert bad_mysql.returncode == 8
    assert "MySQL at mysql://esfaq:***@127.0.0.1:9/x is not available" in err and "s3cret" not in err
    bad_es = sync_cli("full", env={"ES_FAQ_MYSQL_URL": db.url, "ES_FAQ_ES_URL": "http://127.0.0.1:9"})
    _, err = bad_es.communicate(timeout=120)
    assert bad_es.returncode == 3 and "http://127.0.0.1:9" in err
    with pytest.raises(SourceUnavailable, match="Access denied"):
        url = urlparse(db.url)
        wrong = url._replace(netloc=f"{url.username}:wrong@{url.hostname}:{url.port}").geturl()
        with MySqlSource(settings.replace(mysql_url=wrong)).snapshot():
            pass


def test_follow_makes_a_change_searchable_within_seconds_and_retries_outages(
        db, make_sync, searcher, alias, sync_cli):
    db.add(demo(3))
    make_sync().full(progress=False)
    env = {"ES_FAQ_MYSQL_URL": db.url, "ES_FAQ_INDEX_ALIAS": alias}
    follow = sync_cli("incremental", "--follow", "--interval", "0.5", env=env)
    try:
        db.add([{"question": "会员卡丢了怎么补办"}], first_id=10)  # the first change also loads the model
        wait_for(lambda: "10" in search_ids(searcher, alias, "会员卡丢了怎么补办"), 60, "the first change")
        changed = time.monotonic()
        db.add([{"question": "可以开增值税专用发票吗"}], first_id=11)
        wait_for(lambda: "11" in search_ids(searcher, alias, "增值税专用发票"), 30, "the second change")
        assert time.monotonic() - changed < 5
    finally:
        follow.send_signal(signal.SIGTERM)
    out, err = follow.communicate(timeout=60)
    assert follow.returncode == 0 and "stopped" in err
    assert [json.loads(line)["upserted"] for line in out.splitlines()] == [1, 1]

    down = sync_cli("incremental", "--follow", "--interval", "0.2",
                    env={**env, "ES_FAQ_MYSQL_URL": "mysql://esfaq:x@127.0.0.1:9/x"})
    time.sleep(5)
    down.send_signal(signal.SIGTERM)
    _, err = down.communicate(timeout=60)
    delays = [float(line.split("Retrying in ")[1].split(" s")[0])
              for line in err.splitlines() if "is not available" in line]
    assert down.returncode == 0, err
    assert len(delays) >= 2 and delays == sorted(delays) and delays[1] > delays[0]  # backing off
