"""Paging: reading a list response page by page, in whatever style the server uses.

Styles: Laravel (``links.next`` / ``meta.current_page``+``last_page``), cursor
(``next_cursor`` / ``has_more``), page (``pagination.hasNext`` / ``totalPages``),
offset (``total``). A response with none of them is one page. Pages are fetched only
as the caller consumes records. No httpx here: requests go through the client.

Bounds, so a server that keeps announcing pages cannot keep a listing going forever:

* an empty page ends the listing, and so does a page the server already sent (the
  same request again, or the same records again: a server that ignores the page
  parameter);
* when the server announced how much there is (``total``, ``meta.total``,
  ``last_page``, ``totalPages``) and sends far more than that (twice the pages, and
  ten more), the listing stops with an error;
* no listing reads more than ``MAX_PAGES`` (10,000) pages; past that it stops with an
  error naming the ceiling.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from autorun_cli.errors import BadResponseError
from autorun_cli.textsafe import excerpt

if TYPE_CHECKING:
    from autorun_cli.http.client import HttpClient

# The most pages one listing reads (1,000,000 runs at 100 a page).
MAX_PAGES = 10_000


@dataclass
class PageSpec:
    """How a provider asks for pages; which style applies is read off each response."""

    size_param: str | None = "limit"
    max_size: int = 100
    page_param: str = "page"
    cursor_param: str = "cursor"
    offset_param: str = "offset"
    first_page: int | None = None  # e.g. 1 to send page=1 on the first request


def extract_items(doc: Any) -> list[Any] | None:
    """The list of records in a list response, or None when the shape is unknown."""
    if isinstance(doc, list):
        # A list nested one level too deep ([[...]]) is accepted (tenant quirk).
        if len(doc) == 1 and isinstance(doc[0], list):
            return doc[0]
        if doc and all(isinstance(x, list) for x in doc):
            return [item for sub in doc for item in sub]
        return doc
    if isinstance(doc, dict):
        for key in ("data", "items", "results", "runs", "sessions", "executions"):
            if key in doc:
                val = doc[key]
                if isinstance(val, dict):
                    inner = extract_items(val)
                    if inner is not None:
                        return inner
                    continue
                if isinstance(val, list):
                    return extract_items(val)
    return None


def paginate(
    http: HttpClient,
    path: str,
    params: dict[str, Any] | None,
    spec: PageSpec,
    *,
    want: int | None = None,
) -> Iterator[Any]:
    """Yield records page by page, following whatever style the server returns."""
    params = {k: v for k, v in (params or {}).items() if v is not None}
    if spec.size_param:
        params[spec.size_param] = min(want, spec.max_size) if want else spec.max_size
    if spec.first_page is not None:
        params.setdefault(spec.page_param, spec.first_page)
    url: str = path
    requested: set[str] = set()
    contents: set[str] = set()
    offset = pages = 0
    claimed = _Claims()
    while True:
        if pages >= MAX_PAGES:
            raise BadResponseError(
                f"stopped after {MAX_PAGES:,} pages ({offset:,} records): the API still announced another page, "
                f"and autorun reads at most {MAX_PAGES:,} pages per listing",
                hint="narrow the listing (--since, --status, --automation, --limit); if the API repeats itself, "
                "check its pagination with -v",
                code="too_many_pages",
            )
        doc = http.get_json(url, params)
        pages += 1
        http.pages += 1
        items = extract_items(doc)
        if items is None:
            raise BadResponseError(
                f"the list response has no list of runs: {excerpt(json.dumps(doc)[:300], http.secrets)}",
                hint="check the provider and list_path of the profile",
            )
        if not items:
            return
        fingerprint = _fingerprint(items) or f"page {pages}"
        if fingerprint in contents:
            # The same records again: the server ignores the page it was asked for.
            http.log(f"  page {pages} repeats an earlier page; stopping")
            return
        contents.add(fingerprint)
        yield from items
        offset += len(items)
        claimed.read(doc, len(items))
        claimed.check(pages, offset)
        nxt = _next_page(http, doc, path, params, spec, offset)
        if nxt is None:
            return
        url, params = nxt
        key = url + "?" + json.dumps(params, sort_keys=True, default=str)
        if key in requested:  # a server that repeats itself must not loop us forever
            return
        requested.add(key)


def _fingerprint(items: list[Any]) -> str | None:
    # The first and last record stand for the page: cheap on 100-record pages, and two
    # pages of distinct runs never share both.
    try:
        return json.dumps([len(items), items[0], items[-1]], sort_keys=True, default=str)
    except (RecursionError, ValueError):  # too deep to print: never equal to another page
        return None


def _whole(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer() and value >= 0:
        return int(value) if value < 1e18 else None
    return value if isinstance(value, int) and value >= 0 else None


class _Claims:
    """The largest totals the server announced (records and pages) and the
    biggest page it sent, to notice when it sends far more than it said it has."""

    def __init__(self) -> None:
        self.records: int | None = None
        self.pages: int | None = None
        self.page_size = 0

    def read(self, doc: Any, size: int) -> None:
        self.page_size = max(self.page_size, size)
        if not isinstance(doc, dict):
            return
        holders = [doc] + [h for h in (doc.get("meta"), doc.get("pagination")) if isinstance(h, dict)]
        for holder in holders:
            for key in ("total", "total_count", "totalCount"):
                n = _whole(holder.get(key))
                if n is not None:
                    self.records = max(self.records or 0, n)
            for key in ("last_page", "totalPages", "total_pages"):
                n = _whole(holder.get(key))
                if n is not None:
                    self.pages = max(self.pages or 0, n)

    def check(self, pages: int, records: int) -> None:
        limits = []
        if self.pages is not None:
            limits.append((self.pages, f"{self.pages:,} pages"))
        if self.records is not None and self.page_size:
            limits.append((-(-self.records // self.page_size), f"{self.records:,} records"))
        for expected, what in limits:
            if pages > 2 * expected + 10:
                raise BadResponseError(
                    f"the API sent {pages:,} pages ({records:,} records) but announced {what}; "
                    "stopped reading a listing that does not end",
                    hint="the API's pagination is inconsistent; narrow the listing (--since, --status, --limit) "
                    "or check its pages with -v",
                    code="too_many_pages",
                )


def _follow_link(target: str, params: dict[str, Any], spec: PageSpec) -> tuple[str, dict[str, Any]]:
    """Split a next link into URL and params, carrying over the request's own params.

    httpx replaces (not merges) a URL's query with ``params``, so the link's query
    travels as params. Laravel's default paginator links hold only ``page``: the
    filters, sort and page size the link lacks are sent again (the link wins).
    """
    parts = urlsplit(target)
    carried = {
        k: v
        for k, v in params.items()
        if k not in (spec.page_param, spec.cursor_param, spec.offset_param)
    }
    linked: dict[str, Any] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in linked:
            prev = linked[key]
            linked[key] = [*prev, value] if isinstance(prev, list) else [prev, value]
        else:
            linked[key] = value
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")), {**carried, **linked}


def _next_page(
    http: HttpClient, doc: Any, path: str, params: dict[str, Any], spec: PageSpec, offset: int
) -> tuple[str, dict[str, Any]] | None:
    if not isinstance(doc, dict):
        return None
    links, meta = doc.get("links"), doc.get("meta")
    # Laravel
    if isinstance(links, dict) and "next" in links:
        nxt = links.get("next")
        if isinstance(nxt, str) and nxt:
            return _follow_link(http.resolve(nxt), params, spec)
        return None
    if isinstance(meta, dict) and "current_page" in meta and "last_page" in meta:
        try:
            cur, last = int(meta["current_page"]), int(meta["last_page"])
        except (TypeError, ValueError):
            return None
        return (path, {**params, spec.page_param: cur + 1}) if cur < last else None
    # Cursor
    for holder in (doc, meta if isinstance(meta, dict) else {}, doc.get("pagination") or {}):
        if isinstance(holder, dict) and ("next_cursor" in holder or "has_more" in holder):
            cursor = holder.get("next_cursor")
            if cursor and holder.get("has_more", True) is not False:
                return path, {**params, spec.cursor_param: cursor}
            return None
    # Page
    pag = doc.get("pagination")
    if isinstance(pag, dict):
        page = pag.get("page") or pag.get("currentPage") or pag.get("current_page") or params.get(spec.page_param) or 1
        try:
            page = int(page)
        except (TypeError, ValueError):
            return None
        has_next = pag.get("hasNext", pag.get("has_next"))
        total_pages = pag.get("totalPages", pag.get("total_pages"))
        if has_next is None and isinstance(total_pages, int):
            has_next = page < total_pages
        return (path, {**params, spec.page_param: page + 1}) if has_next else None
    # Offset
    total = doc.get("total")
    if isinstance(total, int) and not isinstance(total, bool):
        if offset < total:
            return path, {**params, spec.offset_param: offset}
        return None
    return None
