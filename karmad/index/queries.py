"""Reading the index for RPC handlers, on the event loop, through a read connection.

WAL lets these reads run while the indexer writes, each seeing the last committed
state; every query is bounded (pages, limits, indexed lookups) so a handler never holds
the loop for long. Transcript text for `session.messages` is read back from the files
at the offsets the index recorded, a page at a time, rather than stored twice.
"""

from __future__ import annotations

import base64
import os
import re
import stat
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from karmad import codec, protocol
from karmad.errors import KarmadError, invalid_argument, not_found
from karmad.index.accounting import BUCKET_MS, SUM_COLUMNS
from karmad.index.facts import Facts
from karmad.index.parse import decode_repaired
from karmad.index.pricing import SYNTHETIC_MODEL
from karmad.index.title import readable
from karmad.protocol import ErrorCode
from karmad.store import Row, Store

MAX_PAGE: Final = 500
MAX_LINE_READ: Final = 8 << 20
"""A transcript line longer than this is shown as a placeholder, not loaded."""
MAX_PAGE_BYTES: Final = 16 << 20
"""Transcript bytes read for one page of `session.messages` (at least one line)."""
_FACTS = codec.Decoder(Facts)
_CURSOR = codec.Decoder(list[int | float | str])


# ---------------------------------------------------------------------------- helpers


def _time(ms: int) -> datetime | None:
    return datetime.fromtimestamp(ms / 1000, UTC) if ms else None


def _ms(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _limit(value: int, field: str = "limit") -> int:
    if value < 1:
        raise invalid_argument("must be at least 1", field=field)
    return min(value, MAX_PAGE)


def encode_cursor(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(codec.encode_json(values)).decode().rstrip("=")


def decode_cursor(text: str, length: int) -> list[Any]:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        values = _CURSOR.decode(raw)
    except (ValueError, codec.InvalidData):
        raise invalid_argument("not a cursor this daemon gave out", field="cursor") from None
    if len(values) != length:
        raise invalid_argument("not a cursor for this listing", field="cursor")
    return values


def tokens_of(row: Row | dict[str, Any]) -> protocol.TokenCounts:
    counts = [
        int(row["input"] or 0),
        int(row["output"] or 0),
        int(row["cache_write_5m"] or 0),
        int(row["cache_write_1h"] or 0),
        int(row["cache_read"] or 0),
    ]
    return protocol.TokenCounts(
        requests=int(row["requests"] or 0),
        input=counts[0],
        output=counts[1],
        cache_write_5m=counts[2],
        cache_write_1h=counts[3],
        cache_read=counts[4],
        total=sum(counts),
        cost=float(row["cost"] or 0.0),
        unpriced_requests=int(row["unpriced"] or 0),
    )


def _real_tokens(row: Row) -> protocol.TokenCounts:
    """A session's counts without its `<synthetic>` placeholders (no tokens, no cost:
    only the request count changes)."""
    counts = tokens_of(row)
    counts.requests -= int(row["synthetic"] or 0)
    return counts


def _facts(row: Row) -> Facts:
    text = row["facts"]
    return _FACTS.decode(text) if text and text != "{}" else Facts()


def _like(value: str) -> str:
    return "%" + value.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def fts_query(text: str) -> str:
    """User words as an FTS5 query: every word (or quoted phrase) must appear.

    Quoting each term keeps FTS5 syntax (AND, NEAR, column filters, `*`) out of plain
    searches, so no input can make the query invalid.
    """
    terms: list[str] = []
    rest = text.strip()
    while rest:
        if rest[0] == '"':
            end = rest.find('"', 1)
            phrase = rest[1:end] if end > 0 else rest[1:]
            rest = rest[end + 1 :].strip() if end > 0 else ""
        else:
            word, _, rest = rest.partition(" ")
            phrase = word
            rest = rest.strip()
        phrase = phrase.strip()
        if phrase:
            terms.append('"' + phrase.replace('"', '""') + '"')
    if not terms:
        raise invalid_argument("nothing to search for", field="text")
    return " ".join(terms)


class _Filters:
    """WHERE clauses shared by the listing, search and usage queries."""

    def __init__(self) -> None:
        self.clauses: list[str] = []
        self.params: dict[str, Any] = {}

    def add(self, clause: str, **params: Any) -> None:
        self.clauses.append(clause)
        self.params.update(params)

    def sql(self) -> str:
        return (" AND " + " AND ".join(self.clauses)) if self.clauses else ""


def _whose(roots: str, sessions: str, column: str, mine: bool) -> str:
    """Sessions of a member (`column` member_tag) or user (user_id). This machine's own
    sessions carry no attribution in the index, so when the name is this member's own,
    local sessions match too."""
    clause = f"{roots}.{column} = :{column}"
    return f"({clause} OR {sessions}.origin_key = 'local')" if mine else clause


def _mine(me: tuple[str, str] | None, member: str | None, user: str | None) -> tuple[bool, bool]:
    """Whether the member and user filters name this member (`me`: user, member tag)."""
    return (me is not None and member == me[1], me is not None and user == me[0])


def _common_filters(
    f: _Filters,
    *,
    project: str | None,
    origin: str,
    member: str | None,
    user: str | None = None,
    model: str | None = None,
    me: tuple[str, str] | None = None,
) -> None:
    if project:
        # A project identity, as the handler resolved the name people gave (`projectref`).
        f.add("s.project = :project", project=project)
    if origin == "local":
        f.add("s.origin_key = 'local'")
    elif origin == "remote":
        f.add("s.origin_key != 'local'")
    my_member, my_user = _mine(me, member, user)
    if member:
        f.add(_whose("r", "s", "member_tag", my_member), member_tag=member)
    if user:
        f.add(_whose("r", "s", "user_id", my_user), user_id=user)
    if model:
        f.add(
            "EXISTS (SELECT 1 FROM session_models m WHERE m.session_pk = s.id "
            "AND lower(m.model) LIKE :model_like ESCAPE '\\')",
            model_like=_like(model),
        )


_SORTS: Final = {
    "last": "s.last_ts",
    "first": "s.first_ts",
    "cost": "s.cost",
    "tokens": "(s.input + s.output + s.cache_write_5m + s.cache_write_1h + s.cache_read)",
    "duration": "(s.last_ts - s.first_ts)",
    "prompts": "s.user_prompts",
}

_SYNTHETIC: Final = (
    "(SELECT requests FROM session_models WHERE session_pk = s.id "
    "AND model = '<synthetic>') AS synthetic"
)
"""A session's `<synthetic>` rows: stored with its usage (they are lines of the
transcript), shown apart from it (they are not requests)."""

_PRIMARY: Final = (
    "s.id = (SELECT s2.id FROM sessions s2 JOIN roots r2 ON r2.id = s2.root_id "
    "WHERE s2.session_id = s.session_id{among} "
    "ORDER BY s2.origin_key = 'local' DESC, s2.bytes DESC, s2.id LIMIT 1)"
)
"""One row per session id: the local copy, else the most complete received one (among
the copies the other filters admit)."""


# ---------------------------------------------------------------------------- queries


class IndexQueries:
    def __init__(self, store: Store) -> None:
        self.store = store
        store.execute("PRAGMA query_only = ON")

    @property
    def fts(self) -> bool:
        return bool(self.store.scalar("SELECT value FROM meta WHERE key = 'fts'") == "1")

    def project_identities(self) -> list[str]:
        """Every project the index has sessions of (local and received)."""
        rows = self.store.query("SELECT DISTINCT project FROM sessions WHERE project != ''")
        return [str(r["project"]) for r in rows]

    def price_version(self) -> str:
        return str(self.store.scalar("SELECT value FROM meta WHERE key = 'price_version'") or "")

    # -------------------------------------------------------------- sessions

    def _models(self, pks: list[int]) -> dict[int, list[str]]:
        if not pks:
            return {}
        rows = self.store.query(
            "SELECT session_pk, model FROM session_models "
            "WHERE session_pk IN (SELECT value FROM json_each(?)) AND model != ? "
            "ORDER BY cost DESC, model",
            (codec.encode_json(pks).decode(), SYNTHETIC_MODEL),
        )
        out: dict[int, list[str]] = {}
        for r in rows:
            out.setdefault(r["session_pk"], []).append(r["model"])
        return out

    @staticmethod
    def _summary(row: Row, models: list[str], facts: Facts | None = None) -> dict[str, Any]:
        first, last = int(row["first_ts"]), int(row["last_ts"])
        f = facts if facts is not None else _facts(row)
        return {
            "id": row["session_id"],
            "origin": row["origin_key"],
            "member": row["member_tag"],
            "user": row["user_id"],
            "project": row["project"],
            "project_path": row["project_path"],
            "title": readable(row["title"]),
            "started_at": _time(first),
            "ended_at": _time(last),
            "duration_s": max(last - first, 0) / 1000 if first and last else 0.0,
            "user_prompts": int(row["user_prompts"]),
            "models": models,
            "tokens": _real_tokens(row),
            "price_version": row["price_version"],
            "subagents": f.subagents,
            "bytes": int(row["bytes"]),
            "missing": bool(row["missing"]),
        }

    def list_sessions(
        self, p: protocol.SessionListParams, me: tuple[str, str] | None = None
    ) -> protocol.SessionList:
        """`me` (user, member tag) lets a filter naming this member find local sessions."""
        limit = _limit(p.limit)
        f = _Filters()
        _common_filters(
            f,
            project=p.project,
            origin=p.origin,
            member=p.member,
            user=p.user,
            model=p.model,
            me=me,
        )
        if p.since is not None:
            f.add("s.last_ts >= :since", since=_ms(p.since))
        if p.until is not None:
            f.add("s.first_ts < :until", until=_ms(p.until))
        if p.distinct and p.origin != "local":
            among = " AND s2.origin_key != 'local'" if p.origin == "remote" else ""
            my_member, my_user = _mine(me, p.member, p.user)
            if p.member:
                among += " AND " + _whose("r2", "s2", "member_tag", my_member)
            if p.user:
                among += " AND " + _whose("r2", "s2", "user_id", my_user)
            f.add(_PRIMARY.format(among=among))
        base = f"FROM sessions s JOIN roots r ON r.id = s.root_id WHERE 1{f.sql()}"
        total = int(self.store.scalar(f"SELECT COUNT(*) {base}", f.params))
        key = _SORTS[p.sort]
        direction = "ASC" if p.ascending else "DESC"
        page = _Filters()
        page.params.update(f.params)
        if p.cursor:
            value, last_id = decode_cursor(p.cursor, 2)
            op = ">" if p.ascending else "<"
            page.add(f"({key} {op} :cv OR ({key} = :cv AND s.id {op} :cid))", cv=value, cid=last_id)
        rows = self.store.query(
            f"SELECT s.*, r.member_tag, r.user_id, {_SYNTHETIC}, {key} AS sort_value "
            f"{base}{page.sql()} ORDER BY {key} {direction}, s.id {direction} LIMIT :limit",
            {**page.params, "limit": limit + 1},
        )
        more = len(rows) > limit
        rows = rows[:limit]
        models = self._models([r["id"] for r in rows])
        sessions = [
            protocol.SessionSummary(**self._summary(r, models.get(r["id"], []))) for r in rows
        ]
        cursor = encode_cursor([rows[-1]["sort_value"], rows[-1]["id"]]) if more else None
        return protocol.SessionList(sessions=sessions, total=total, next_cursor=cursor)

    def resolve(self, ident: str, origin: str | None = None) -> Row:
        """The session row for an id or unambiguous prefix (local copy preferred)."""
        text = ident.strip()
        if not text:
            raise invalid_argument("a session id is needed", field="id")
        exact = self.store.query(
            f"SELECT s.*, r.member_tag, r.user_id, {_SYNTHETIC} FROM sessions s "  # noqa: S608
            "JOIN roots r ON r.id = s.root_id "
            "WHERE s.session_id = ? ORDER BY s.origin_key = 'local' DESC, s.bytes DESC",
            (text,),
        )
        rows = exact
        if not rows:
            upper = text[:-1] + chr(ord(text[-1]) + 1)
            rows = self.store.query(
                f"SELECT s.*, r.member_tag, r.user_id, {_SYNTHETIC} FROM sessions s "  # noqa: S608
                "JOIN roots r ON r.id = s.root_id "
                "WHERE s.session_id >= ? AND s.session_id < ? "
                "ORDER BY s.origin_key = 'local' DESC, s.bytes DESC LIMIT 50",
                (text, upper),
            )
            ids = sorted({r["session_id"] for r in rows})
            if len(ids) > 1:
                shown = ", ".join(ids[:5]) + (", ..." if len(ids) > 5 else "")
                raise KarmadError(
                    ErrorCode.INVALID_ARGUMENT,
                    f"{text!r} matches {len(ids)} sessions: {shown}",
                    field="id",
                )
        if origin is not None:
            rows = [r for r in rows if r["origin_key"] == origin]
        if not rows:
            problem = self.store.query_one(
                "SELECT path, reason FROM file_problems WHERE session_id >= ? "
                "AND session_id < ? ORDER BY session_id = ? DESC, path LIMIT 1",
                (text, text[:-1] + chr(ord(text[-1]) + 1), text),
            )
            if problem is not None:
                raise KarmadError(
                    ErrorCode.NOT_FOUND,
                    f"session {text} is not indexed: {problem['path']}: {problem['reason']}",
                )
            raise not_found("session", text)
        return rows[0]

    def get_session(self, p: protocol.SessionGetParams) -> protocol.SessionDetail:
        row = self.resolve(p.id, p.origin)
        pk = int(row["id"])
        facts = _facts(row)
        model_rows = self.store.query(
            "SELECT * FROM session_models WHERE session_pk = ? ORDER BY cost DESC, model", (pk,)
        )
        by_model = [
            protocol.ModelUsage(model=m["model"], tokens=tokens_of(m), priced=m["unpriced"] == 0)
            for m in model_rows
            if m["model"] != SYNTHETIC_MODEL
        ]
        files = [
            protocol.SessionFile(
                path=f["path"],
                kind=f["kind"],
                agent_id=f["agent_id"],
                size=f["size"],
                indexed_bytes=f["usage_offset"],
                text_indexed_bytes=f["text_offset"],
                lines=f["usage_lines"],
                pending_bytes=f["pending"],
                bad_lines=f["bad_lines"],
                missing=bool(f["missing"]),
            )
            for f in self.store.query(
                "SELECT * FROM files WHERE session_pk = ? ORDER BY kind != 'main', path", (pk,)
            )
        ]
        errors = [
            protocol.LineProblem(
                path=e["path"],
                line=e["line"],
                offset=e["offset"],
                reason=e["reason"],
                sample=e["sample"],
                repaired=bool(e["repaired"]),
            )
            for e in self.store.query(
                "SELECT f.path, e.* FROM line_errors e JOIN files f ON f.id = e.file_id "
                "WHERE f.session_pk = ? ORDER BY f.path, e.offset LIMIT 200",
                (pk,),
            )
        ]
        problems = self.file_problems(
            "WHERE p.root_id = ? AND p.session_id = ?", (row["root_id"], row["session_id"])
        )
        mcp: dict[str, int] = {}
        for name, count in facts.tools.items():
            if name.startswith("mcp__"):
                server = name.split("__")[1] if name.count("__") >= 2 else name[5:]
                mcp[server] = mcp.get(server, 0) + count
        return protocol.SessionDetail(
            **self._summary(row, [m.model for m in by_model], facts),
            cwd=row["cwd"],
            cwds=facts.cwds,
            project_source=row["project_source"],
            git_remote=row["git_remote"],
            branches=facts.branches,
            versions=facts.versions,
            entrypoints=facts.entrypoints,
            summary=facts.summary,
            custom_title=facts.custom_title,
            first_prompt=facts.first_prompt,
            record_types=facts.types,
            system_subtypes=facts.system,
            tool_uses=facts.tools,
            mcp_servers=mcp,
            tool_errors=facts.tool_errors,
            subagent_types=facts.subagent_types,
            agents=facts.agents,
            inline_subagents=facts.inline_sidechains,
            sidechain_lines=facts.sidechain_lines,
            compactions=facts.compactions,
            api_errors=facts.api_errors,
            active_s=facts.active_ms / 1000,
            web_search_requests=int(row["web_search"]),
            web_fetch_requests=int(row["web_fetch"]),
            shared_requests=int(row["shared_requests"]),
            synthetic_requests=int(row["synthetic"] or 0),
            by_model=by_model,
            files=files,
            tool_result_files=int(row["tool_result_files"]),
            tool_result_bytes=int(row["tool_result_bytes"]),
            bad_lines=int(row["bad_lines"]),
            errors=errors,
            unknown_types=facts.unknown_types,
            unknown_fields=facts.unknown_fields,
            file_problems=problems,
        )

    # -------------------------------------------------------------- transcript

    def messages(self, p: protocol.SessionMessagesParams) -> protocol.SessionMessages:
        row = self.resolve(p.id, p.origin)
        pk = int(row["id"])
        limit = _limit(p.limit)
        if p.max_text < 1:
            raise invalid_argument("must be at least 1", field="max_text")
        f = _Filters()
        f.params["pk"] = pk
        if not p.sidechains:
            f.add("e.sidechain = 0")
        total = int(
            self.store.scalar(
                f"SELECT COUNT(*) FROM entries e WHERE e.session_pk = :pk{f.sql()}",  # noqa: S608
                f.params,
            )
        )
        if p.cursor:
            ts, file_id, offset = decode_cursor(p.cursor, 3)
            f.add("(e.ts, e.file_id, e.offset) > (:ts, :fid, :off)", ts=ts, fid=file_id, off=offset)
        rows = self.store.query(
            "SELECT e.*, fl.path, fl.inode, fl.usage_offset FROM entries e "  # noqa: S608
            f"JOIN files fl ON fl.id = e.file_id WHERE e.session_pk = :pk{f.sql()} "
            "ORDER BY e.ts, e.file_id, e.offset LIMIT :limit",
            {**f.params, "limit": limit + 1},
        )
        more = len(rows) > limit
        rows = rows[:limit]
        items: list[protocol.TranscriptEntry] = []
        budget = MAX_PAGE_BYTES
        last: Row | None = None
        for r, raw in zip(rows, _read_lines(rows), strict=True):
            if items and budget - r["length"] < 0:
                more = True
                break
            budget -= r["length"]
            items.append(render(r, raw, p.max_text))
            last = r
        cursor = None
        if more and last is not None:
            cursor = encode_cursor([last["ts"], last["file_id"], last["offset"]])
        return protocol.SessionMessages(
            id=row["session_id"], items=items, total=total, next_cursor=cursor
        )

    # -------------------------------------------------------------- search

    def search(
        self,
        p: protocol.SessionSearchParams,
        complete: bool,
        me: tuple[str, str] | None = None,
    ) -> protocol.SearchResults:
        limit = _limit(p.limit)
        query = fts_query(p.text)
        if not self.fts:
            return protocol.SearchResults(hits=[], available=False, complete=False)
        f = _Filters()
        _common_filters(f, project=p.project, origin=p.origin, member=p.member, user=p.user, me=me)
        if p.since is not None:
            f.add("e.ts >= :since", since=_ms(p.since))
        if p.until is not None:
            f.add("e.ts < :until", until=_ms(p.until))
        if p.session:
            f.add("s.id = :pk", pk=int(self.resolve(p.session)["id"]))
        rows = self.store.query(
            "SELECT s.session_id, s.origin_key, s.project, s.title, e.ts, e.kind, e.uuid, "  # noqa: S608
            "r.member_tag, r.user_id, "
            "snippet(entries_text, 0, '«', '»', '…', 16) AS snippet, "
            "bm25(entries_text) AS rank "
            "FROM entries_text JOIN entries e ON e.id = entries_text.rowid "
            "JOIN sessions s ON s.id = e.session_pk JOIN roots r ON r.id = s.root_id "
            f"WHERE entries_text MATCH :query{f.sql()} ORDER BY rank LIMIT :limit",
            {**f.params, "query": query, "limit": limit},
        )
        hits = [
            protocol.SearchHit(
                session=r["session_id"],
                origin=r["origin_key"],
                member=r["member_tag"],
                user=r["user_id"],
                project=r["project"],
                title=readable(r["title"]),
                time=_time(r["ts"]),
                kind=r["kind"],
                uuid=r["uuid"],
                snippet=" ".join(str(r["snippet"]).split()),
                rank=float(r["rank"]),
            )
            for r in rows
        ]
        return protocol.SearchResults(hits=hits, available=True, complete=complete)

    # -------------------------------------------------------------- usage

    def usage(self, p: protocol.UsageSummaryParams) -> protocol.UsageSummary:
        zone: ZoneInfo | None = None
        if p.tz:
            try:
                zone = ZoneInfo(p.tz)
            except (ZoneInfoNotFoundError, ValueError):
                raise invalid_argument(f"unknown time zone {p.tz!r}", field="tz") from None
        f = _Filters()
        _common_filters(
            f, project=p.project, origin=p.origin, member=p.member, user=p.user, model=None
        )
        if p.model:
            f.add("lower(b.model) LIKE :model_like ESCAPE '\\'", model_like=_like(p.model))
        if p.since is not None:
            f.add("b.bucket >= :since", since=_ms(p.since) // BUCKET_MS)
        if p.until is not None:
            f.add("b.bucket < :until", until=-(-_ms(p.until) // BUCKET_MS))
        timed = p.group_by in ("day", "week", "month")
        column = {
            "day": "b.bucket",
            "week": "b.bucket",
            "month": "b.bucket",
            "project": "s.project",
            "model": "b.model",
            "session": "s.session_id",
            "member": "r.member_tag",
            "user": "r.user_id",
            "device": "r.device_id",
        }[p.group_by]
        # The daily table without filters is what people ask for most: it reads the slots
        # alone, without a join per slot to the session and root it belongs to.
        joins = (
            " JOIN sessions s ON s.id = b.session_pk JOIN roots r ON r.id = s.root_id"
            if any(_OUTSIDE_SLOTS.search(c) for c in [*f.clauses, column])
            else ""
        )
        rows = self.store.query(
            f"SELECT {column} AS k, b.model AS model, SUM(b.requests) AS requests, "  # noqa: S608
            "SUM(b.input) AS input, SUM(b.output) AS output, "
            "SUM(b.cache_write_5m) AS cache_write_5m, SUM(b.cache_write_1h) AS cache_write_1h, "
            "SUM(b.cache_read) AS cache_read, SUM(b.cost) AS cost, SUM(b.unpriced) AS unpriced "
            f"FROM usage_buckets b{joins} WHERE 1{f.sql()} GROUP BY k, b.model",
            f.params,
        )
        groups: dict[str, dict[str, list[float]]] = {}
        synthetic = 0
        for r in rows:
            if r["model"] == SYNTHETIC_MODEL:
                synthetic += int(r["requests"] or 0)
                continue
            key = _time_key(int(r["k"]), p.group_by, zone) if timed else str(r["k"] or "")
            per_model = groups.setdefault(key, {})
            acc = per_model.setdefault(r["model"], [0] * 8)
            for i, name in enumerate(_SUMS):
                acc[i] += r[name] or 0
        out: list[protocol.UsageRow] = []
        totals = [0.0] * 8
        unpriced: set[str] = set()
        for key, per_model in groups.items():
            row_sum = [0.0] * 8
            models: dict[str, protocol.TokenCounts] = {}
            for model, acc in per_model.items():
                for i, v in enumerate(acc):
                    row_sum[i] += v
                    totals[i] += v
                if acc[7]:
                    unpriced.add(model)
                if p.breakdown:
                    models[model] = tokens_of(dict(zip(_SUMS, acc, strict=True)))
            out.append(
                protocol.UsageRow(
                    key=key, tokens=tokens_of(dict(zip(_SUMS, row_sum, strict=True))), models=models
                )
            )
        if timed:
            out.sort(key=lambda r: r.key)
        else:
            out.sort(key=lambda r: (-r.tokens.cost, -r.tokens.total, r.key))
        if p.group_by == "session":
            self._label_sessions(out)
        return protocol.UsageSummary(
            group_by=p.group_by,
            tz=p.tz or "local",
            rows=out,
            totals=tokens_of(dict(zip(_SUMS, totals, strict=True))),
            price_version=self.price_version(),
            unpriced_models=sorted(unpriced),
            synthetic_requests=synthetic,
        )

    def _label_sessions(self, rows: list[protocol.UsageRow]) -> None:
        """Each session row's title, so that a person can tell the rows apart."""
        titles: dict[str, str] = {}
        for r in self.store.query(
            "SELECT session_id, title FROM sessions "
            "WHERE session_id IN (SELECT value FROM json_each(?)) "
            "ORDER BY origin_key = 'local', bytes",
            (codec.encode_json([row.key for row in rows]).decode(),),
        ):
            titles[r["session_id"]] = readable(r["title"])  # the local copy's wins
        for row in rows:
            row.label = titles.get(row.key, "")

    # -------------------------------------------------------------- status

    def rejected(self, limit: int = 100) -> list[protocol.IndexRejected]:
        rows = self.store.query(
            "SELECT x.path, x.reason, x.at, r.member_tag FROM rejected x "
            "JOIN roots r ON r.id = x.root_id ORDER BY x.at DESC LIMIT ?",
            (limit,),
        )
        return [
            protocol.IndexRejected(
                path=r["path"], reason=r["reason"], member=r["member_tag"], at=_time(r["at"])
            )
            for r in rows
        ]

    def file_problems(
        self, where: str = "", params: tuple[Any, ...] = (), limit: int = 100
    ) -> list[protocol.IndexFileProblem]:
        rows = self.store.query(
            f"SELECT * FROM file_problems p {where} ORDER BY p.path LIMIT ?",  # noqa: S608
            (*params, limit),
        )
        return [
            protocol.IndexFileProblem(
                path=r["path"],
                reason=r["reason"],
                session=r["session_id"],
                transient=bool(r["transient"]),
                attempts=r["attempts"],
                since=_time(r["since"]),
                retry_at=_time(r["retry_at"]),
            )
            for r in rows
        ]

    def problem_count(self) -> int:
        return int(self.store.scalar("SELECT COUNT(*) FROM file_problems"))

    def root_counts(self) -> dict[str, tuple[int, int]]:
        rows = self.store.query(
            "SELECT r.path, (SELECT COUNT(*) FROM sessions s WHERE s.root_id = r.id) AS sessions, "
            "(SELECT COUNT(*) FROM files f WHERE f.root_id = r.id) AS files FROM roots r"
        )
        return {r["path"]: (int(r["sessions"]), int(r["files"])) for r in rows}


_SUMS: Final = SUM_COLUMNS
_OUTSIDE_SLOTS: Final = re.compile(r"\b[sr]\.")
"""A clause that reads a session (`s.`) or root (`r.`) column, not only the slots."""


def _time_key(bucket: int, group: str, zone: ZoneInfo | None) -> str:
    seconds = bucket * BUCKET_MS / 1000
    if zone is None:
        local = time.localtime(seconds)
        day = date(local.tm_year, local.tm_mon, local.tm_mday)
    else:
        day = datetime.fromtimestamp(seconds, zone).date()
    if group == "day":
        return day.isoformat()
    if group == "week":
        return (day - timedelta(days=day.weekday())).isoformat()
    return f"{day.year:04d}-{day.month:02d}"


# ---------------------------------------------------------------------------- rendering


def _read_lines(rows: list[Row]) -> Iterator[bytes | str]:
    """Each entry's line from its file, or why it cannot be shown."""
    fds: dict[str, int | str] = {}
    try:
        for r in rows:
            path = r["path"]
            length = int(r["length"])
            if length > MAX_LINE_READ:
                yield f"line of {length} bytes, too long to show"
                continue
            fd = fds.get(path)
            if fd is None:
                fd = fds[path] = _open_transcript(path)
            if isinstance(fd, str):
                yield fd
                continue
            data = os.pread(fd, length, int(r["offset"]))
            if len(data) != length or not data.endswith(b"\n"):
                yield "the transcript changed since it was indexed"
                continue
            yield data
    finally:
        for fd in fds.values():
            if isinstance(fd, int):
                os.close(fd)


def _open_transcript(path: str) -> int | str:
    """A descriptor of the regular file at `path`, or why there is none.

    Never blocking the event loop, whatever is at the path by now (a named pipe would
    hold a plain `open` until someone writes to it).
    """
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return "transcript not readable: not a regular file"
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError as exc:
        return f"transcript not readable: {exc.strerror}"
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return "transcript not readable: not a regular file"
    return fd


class _Inner(msgspec.Struct):
    type: str = ""
    text: str | None = None


class _Block(msgspec.Struct):
    type: str = ""
    text: str | None = None
    thinking: str | None = None
    name: str | None = None
    id: str | None = None
    tool_use_id: str | None = None
    input: msgspec.Raw = msgspec.Raw(b"null")
    content: str | list[_Inner] | None = None
    is_error: bool | None = None


class _Message(msgspec.Struct):
    id: str | None = None
    model: str | None = None
    content: str | list[_Block] | None = None


class _Line(msgspec.Struct, rename="camel"):
    type: str = ""
    subtype: str | None = None
    uuid: str | None = None
    timestamp: str | None = None
    is_sidechain: bool | None = False
    is_meta: bool | None = False
    is_compact_summary: bool | None = False
    agent_id: str | None = None
    message: _Message | None = None
    content: str | None = None


_LINE = codec.Decoder(_Line)
_ANY: Final = codec.Decoder(Any)
MAX_INPUT_JSON: Final = 16 * 1024


def _cut(text: str, limit: int) -> tuple[str, bool]:
    return (text, False) if len(text) <= limit else (text[:limit], True)


def _blocks(content: str | list[_Block] | None, limit: int) -> list[protocol.ContentBlock]:
    if content is None:
        return []
    if isinstance(content, str):
        text, cut = _cut(content, limit)
        return [protocol.ContentBlock(type="text", text=text, truncated=cut)]
    out: list[protocol.ContentBlock] = []
    for b in content:
        if b.type == "text":
            text, cut = _cut(b.text or "", limit)
            out.append(protocol.ContentBlock(type="text", text=text, truncated=cut))
        elif b.type == "thinking":
            text, cut = _cut(b.thinking or "", limit)
            out.append(protocol.ContentBlock(type="thinking", text=text, truncated=cut))
        elif b.type in ("tool_use", "server_tool_use"):
            raw = bytes(b.input)
            if len(raw) <= MAX_INPUT_JSON:
                value: Any = decode_repaired(_ANY, raw)
                out.append(
                    protocol.ContentBlock(
                        type="tool_use", name=b.name or "", id=b.id or "", input=value
                    )
                )
            else:
                text, _ = _cut(raw.decode("utf-8", "replace"), min(limit, MAX_INPUT_JSON))
                out.append(
                    protocol.ContentBlock(
                        type="tool_use", name=b.name or "", id=b.id or "", text=text, truncated=True
                    )
                )
        elif b.type == "tool_result" or b.type.endswith("_tool_result"):
            if isinstance(b.content, str):
                joined = b.content
            elif isinstance(b.content, list):
                joined = "\n".join(
                    i.text or "" if i.type == "text" else f"[{i.type}]" for i in b.content
                )
            else:
                joined = ""
            text, cut = _cut(joined, limit)
            out.append(
                protocol.ContentBlock(
                    type="tool_result",
                    id=b.tool_use_id or "",
                    text=text,
                    is_error=bool(b.is_error),
                    truncated=cut,
                )
            )
        elif b.type == "image":
            out.append(protocol.ContentBlock(type="image"))
        else:
            out.append(protocol.ContentBlock(type="other", text=b.type))
    return out


def render(r: Row, raw: bytes | str, limit: int) -> protocol.TranscriptEntry:
    """One transcript line as the protocol shows it."""
    base: dict[str, Any] = {
        "kind": r["kind"],
        "uuid": r["uuid"],
        "time": _time(int(r["ts"])),
        "sidechain": bool(r["sidechain"]),
        "agent_id": r["agent_id"],
        "file": r["path"],
        "line": int(r["line"]),
    }
    if isinstance(raw, str):
        return protocol.TranscriptEntry(
            **base, blocks=[protocol.ContentBlock(type="other", text=raw)]
        )
    line = decode_repaired(_LINE, raw)
    if line is None:
        return protocol.TranscriptEntry(
            **base, blocks=[protocol.ContentBlock(type="other", text="unreadable line")]
        )
    message = line.message
    if line.type == "system":
        text, cut = _cut(line.content or "", limit)
        blocks = [protocol.ContentBlock(type="text", text=text, truncated=cut)] if text else []
    else:
        blocks = _blocks(message.content if message is not None else None, limit)
    return protocol.TranscriptEntry(
        **base,
        model=(message.model or "") if message is not None else "",
        message_id=(message.id or "") if message is not None else "",
        subtype=line.subtype or "",
        meta=bool(line.is_meta or line.is_compact_summary),
        blocks=blocks,
    )
