"""Read FAQs from MySQL through the configured column mapping: a consistent snapshot, or changed rows."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import parse_qs, unquote, urlparse

import pymysql
from pymysql.cursors import SSCursor

from ..config.settings import Settings
from ..config.urls import mask_url
from ..errors import ConfigError, SourceUnavailable
from ..kb.faq import BadRecord, Faq, parse_faq

# MySQL errors that mean the mapping names a table or column that is not there, not an outage.
SCHEMA_ERRORS = {1054, 1064, 1142, 1143, 1146}
# The streaming read pauses while a batch is embedded; MySQL's default 60 s write timeout
# would drop the connection whenever Elasticsearch is slow to take a bulk request.
STREAM_WRITE_TIMEOUT_S = 3600


class BadRow(BadRecord):
    """A row the sync skips; named by its id, since rows have no line numbers."""

    def __str__(self) -> str:
        return f"id {self.id}: {self.reason}"


@dataclass
class Change:
    """One FAQ row as read for an incremental run: its watermark key, its record, whether it is deleted."""

    key: dict
    record: Faq | BadRow
    deleted: bool
    notes: list[str] = field(default_factory=list)


def _ident(name: str, setting: str) -> str:
    if not name or "`" in name or not name.replace(".", "").replace("_", "").replace("$", "").isalnum():
        raise ConfigError(f"{setting}={name!r} is not a plain table or column name")
    return ".".join(f"`{part}`" for part in name.split("."))


def _text(value, name: str) -> str:
    """Column value as text; binary columns (a legacy admin tool's VARBINARY/BLOB) must hold UTF-8."""
    if value is None:
        return ""
    if isinstance(value, (bytes, bytearray)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"{name} is not valid UTF-8 "
                             f"(byte 0x{value[exc.start]:02x} at offset {exc.start})") from None
    return str(value)


def _mark(updated_at, faq_id) -> dict:
    stamp = updated_at.isoformat() if isinstance(updated_at, datetime) else str(updated_at)
    return {"updated_at": stamp, "id": faq_id}


class MySqlSource:
    """The FAQ tables behind ES_FAQ_MYSQL_URL, read as Faq records (or BadRow for rows that cannot be)."""

    def __init__(self, settings: Settings):
        self.settings = settings
        if not settings.mysql_url:
            raise ConfigError("ES_FAQ_MYSQL_URL is not set; set it to mysql://user:password@host:port/database "
                              "(docs/sync.md)")
        url = urlparse(settings.mysql_url)
        if url.scheme not in {"mysql", "mariadb", "mysql+pymysql"} or not url.path.strip("/"):
            raise ConfigError(f"ES_FAQ_MYSQL_URL={mask_url(settings.mysql_url)} is not "
                              "mysql://user:password@host:port/database")
        self.url = mask_url(url._replace(query="").geturl())
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        self._connect_args = {
            "host": url.hostname or "127.0.0.1", "port": url.port or 3306, "user": unquote(url.username or ""),
            "password": unquote(url.password or ""), "database": unquote(url.path.strip("/")),
            "charset": "utf8mb4", "connect_timeout": settings.mysql_connect_timeout_s,
        }
        if "unix_socket" in query:
            self._connect_args["unix_socket"] = query["unix_socket"]
        if "ssl_ca" in query:
            self._connect_args["ssl"] = {"ca": query["ssl_ca"]}
        self._build_sql()

    def _build_sql(self) -> None:
        """Every mapped column projected to one canonical name, in the order _record() reads them."""
        s = self.settings

        def col(setting: str) -> str:
            return _ident(getattr(s, setting), setting)

        def flag(setting: str, default: int) -> str:
            return f"(COALESCE({col(setting)}, {default}) <> 0)" if getattr(s, setting) else str(default)

        table, fid, updated = col("mysql_faq_table"), col("mysql_id_column"), col("mysql_updated_at_column")
        category = col("mysql_category_column") if s.mysql_category_column else "''"
        base = (f"SELECT {fid} AS id, {col('mysql_question_column')} AS question, "
                f"{col('mysql_answer_column')} AS answer, {category} AS category, "
                f"{flag('mysql_enabled_column', 1)} AS enabled, {flag('mysql_deleted_column', 0)} AS deleted, "
                f"{updated} AS updated_at FROM {table}")
        join, similar, similar_order = "", "NULL", ""
        if s.mysql_similar_table:
            join = f"LEFT JOIN {col('mysql_similar_table')} AS s ON s.{col('mysql_similar_faq_id_column')} = f.id"
            similar = f"s.{col('mysql_similar_question_column')}"
            similar_order = f", s.{col('mysql_similar_order_column')}"

        def joined(inner: str, order: str) -> str:
            # One row per similar question, FAQ after FAQ; _grouped() folds them back together.
            return (f"SELECT f.id, f.question, f.answer, f.category, f.enabled, f.deleted, f.updated_at, {similar} "
                    f"FROM ({inner}) AS f {join} ORDER BY {order}{similar_order}")

        live = f"{base} WHERE NOT {flag('mysql_deleted_column', 0)}" if s.mysql_deleted_column else base
        self._sql_all = joined(live, "f.id")
        self._sql_count = f"SELECT COUNT(*) FROM ({live}) AS f"
        self._sql_high = f"SELECT {updated}, {fid} FROM {table} ORDER BY {updated} DESC, {fid} DESC LIMIT 1"
        self._sql_changed = joined(f"{base} WHERE {updated} > %s OR ({updated} = %s AND {fid} > %s) "
                                   f"ORDER BY {updated}, {fid} LIMIT %s", "f.updated_at, f.id")
        self._sql_ids = joined(f"{base} WHERE {fid} IN %s", "f.id")

    def _fail(self, exc: pymysql.err.MySQLError) -> Exception:
        code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
        reason = exc.args[1] if len(exc.args) > 1 else str(exc)
        if code in SCHEMA_ERRORS:
            return ConfigError(f"MySQL at {self.url} rejected the sync query: {reason}. Check the ES_FAQ_MYSQL_* "
                               "table and column settings against your schema (docs/sync.md).")
        return SourceUnavailable(
            f"MySQL at {self.url} is not available: {reason}. Check that it is running and that ES_FAQ_MYSQL_URL "
            "(mysql://user:password@host:port/database) is right; the sync resumes from its last watermark "
            "when run again.")

    @contextlib.contextmanager
    def _connection(self) -> Iterator[pymysql.connections.Connection]:
        try:
            conn = pymysql.connect(**self._connect_args)
        except pymysql.err.MySQLError as exc:
            raise self._fail(exc) from None
        try:
            yield conn
        except pymysql.err.MySQLError as exc:
            raise self._fail(exc) from None
        finally:
            conn.close()

    def _record(self, row: tuple, similar: list, number: int) -> tuple[Faq | BadRow, list[str]]:
        """One FAQ from its row and its similar questions: cleaned, or a BadRow saying why not."""
        faq_id = row[0]
        notes: list[str] = []
        try:
            question, answer, category = (_text(row[i], name) for i, name in ((1, "question"), (2, "answer"),
                                                                                 (3, "category")))
            faq = parse_faq({"id": faq_id, "question": question, "answer": answer, "category": category,
                             "enabled": bool(row[4]), "similar_questions": [],
                             "updated_at": _mark(row[6], faq_id)["updated_at"] if row[6] is not None else None})
        except ValueError as exc:
            return BadRow(number, str(exc), str(faq_id)), notes
        max_question, max_answer = self.settings.mysql_max_question_chars, self.settings.mysql_max_answer_chars
        if len(faq.question) > max_question:
            return BadRow(number, f"question is {len(faq.question)} characters; the limit is "
                                  f"ES_FAQ_MYSQL_MAX_QUESTION_CHARS={max_question}", faq.id), notes
        if len(faq.answer) > max_answer:
            return BadRow(number, f"answer is {len(faq.answer)} characters; the limit is "
                                  f"ES_FAQ_MYSQL_MAX_ANSWER_CHARS={max_answer}", faq.id), notes
        texts = []
        for position, raw in enumerate(similar, start=1):
            try:
                text = _text(raw, f"similar question {position}")
            except ValueError as exc:
                notes.append(f"id {faq.id}: {exc}; dropped it")
                continue
            if len(text) > max_question:
                notes.append(f"id {faq.id}: similar question {position} is {len(text)} characters; dropped it")
                continue
            texts.append(text)
        # parse_faq drops blanks and duplicates (of each other and of the standard question).
        faq.similar_questions = parse_faq({"id": faq.id, "question": faq.question,
                                           "similar_questions": texts}).similar_questions
        dropped = len(texts) - len(faq.similar_questions)
        if dropped:
            notes.append(f"id {faq.id}: dropped {dropped} blank or duplicate similar question(s)")
        return faq, notes

    def _grouped(self, rows: Iterator[tuple]) -> Iterator[tuple[tuple, list]]:
        """The joined rows (one per similar question) folded back into one (row, similar texts) per FAQ."""
        current, similar = None, []
        for row in rows:
            if current is not None and row[0] != current[0]:
                yield current, similar
                similar = []
            current = row
            if row[7] is not None:
                similar.append(row[7])
        if current is not None:
            yield current, similar

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[Snapshot]:
        """A read-only transaction: the count, the high mark and the rows all describe one moment."""
        with self._connection() as conn:
            with conn.cursor() as cur:
                cur.execute(f"SET SESSION net_write_timeout = {STREAM_WRITE_TIMEOUT_S}")
                cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                cur.execute("START TRANSACTION READ ONLY, WITH CONSISTENT SNAPSHOT")
            yield Snapshot(self, conn)

    def _changes(self, sql: str, params: tuple) -> list[Change]:
        with self._connection() as conn, conn.cursor() as cur:
            cur.execute(sql, params)
            rows = cur.fetchall()
        changes = []
        for number, (row, similar) in enumerate(self._grouped(iter(rows)), start=1):
            record, notes = self._record(row, similar, number)
            changes.append(Change(_mark(row[6], row[0]), record, bool(row[5]), notes))
        return changes

    def changed_since(self, after: dict, limit: int) -> list[Change]:
        """Up to `limit` FAQ rows (deleted ones too) past `after`, in (updated_at, id) order."""
        stamp = datetime.fromisoformat(after["updated_at"])
        return self._changes(self._sql_changed, (stamp, stamp, after["id"], limit))

    def fetch(self, ids: list) -> list[Change]:
        """The current rows of these FAQ ids (those still in the table)."""
        return self._changes(self._sql_ids, (tuple(ids),)) if ids else []


class Snapshot:
    """The whole FAQ table as of one consistent read; `records()` streams with a server-side cursor."""

    def __init__(self, source: MySqlSource, conn):
        self.source, self.conn = source, conn
        self.notes: list[str] = []
        self.rows = 0

    def count(self) -> int:
        with self.conn.cursor() as cur:
            cur.execute(self.source._sql_count)
            return int(cur.fetchone()[0])

    def high_mark(self) -> dict | None:
        """The newest (updated_at, id), deleted rows included: where incremental runs continue from."""
        with self.conn.cursor() as cur:
            cur.execute(self.source._sql_high)
            row = cur.fetchone()
        return _mark(row[0], row[1]) if row else None

    def records(self) -> Iterator[Faq | BadRow]:
        batch = self.source.settings.mysql_batch_size
        try:
            with self.conn.cursor(SSCursor) as cur:
                cur.execute(self.source._sql_all)
                for row, similar in self.source._grouped(self._stream(cur, batch)):
                    self.rows += 1
                    record, notes = self.source._record(row, similar, self.rows)
                    self.notes.extend(notes)
                    yield record
        except pymysql.err.MySQLError as exc:
            raise self.source._fail(exc) from None

    @staticmethod
    def _stream(cur, batch: int) -> Iterator[tuple]:
        while rows := cur.fetchmany(batch):
            yield from rows
