"""Fetching one label's Wikipedia lead with wikipedia-api, and classifying what came back.

wikipedia-api already retries transient failures (timeouts, connection errors, HTTP 429 honouring
Retry-After, HTTP 5xx) with exponential backoff; we set how many times and how long. A page that
is missing or a disambiguation page is a per-label outcome, never text.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

PROJECT_URL = "https://github.com/ssiw/ssiw"
DISAMBIGUATION_CATEGORIES = ("Category:All disambiguation pages", "Category:Disambiguation pages")

# Outcomes of one fetch.
OK, MISSING, DISAMBIGUATION, EMPTY, ERROR = "ok", "missing", "disambiguation", "empty", "error"


def default_user_agent() -> str:
    """Wikimedia asks for a tool name plus a way to reach its operator; $SSIW_CONTACT overrides ours."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        ver = version("ssiw")
    except PackageNotFoundError:
        ver = "dev"
    contact = os.environ.get("SSIW_CONTACT", PROJECT_URL)
    return f"ssiw/{ver} ({contact}; label descriptions for semantic segmentation)"


@dataclass(frozen=True)
class FetchConfig:
    user_agent: str
    language: str = "en"
    timeout_s: float = 10.0
    max_retries: int = 3
    retry_wait_s: float = 1.0
    api_url: str | None = None  # a stand-in MediaWiki API endpoint (tests); None = the real one


@dataclass(frozen=True)
class FetchResult:
    label: str
    title: str
    status: str  # ok | missing | disambiguation | empty | error
    text: str = ""
    detail: str = ""


def make_client(cfg: FetchConfig, transport: Any = None):
    """A wikipediaapi.Wikipedia with our user agent, timeout and retry policy."""
    import wikipediaapi

    class _Wikipedia(wikipediaapi.Wikipedia):
        def _build_url(self, language: str) -> str:  # type: ignore[override]
            return cfg.api_url or wikipediaapi.Wikipedia._build_url(language)

    kwargs: dict[str, Any] = {"timeout": cfg.timeout_s}
    if transport is not None:
        kwargs["transport"] = transport
    return _Wikipedia(
        user_agent=cfg.user_agent,
        language=cfg.language,
        extract_format=wikipediaapi.ExtractFormat.WIKI,
        max_retries=cfg.max_retries,
        retry_wait=cfg.retry_wait_s,
        **kwargs,
    )


def _describe_error(e: Exception) -> str:
    import wikipediaapi

    if isinstance(e, wikipediaapi.WikiHttpTimeoutError):
        return "timed out (after retries)"
    if isinstance(e, wikipediaapi.WikiRateLimitError):
        return "rate limited: HTTP 429 (after retries)"
    if isinstance(e, wikipediaapi.WikiHttpError):
        return f"HTTP {e.status_code}" + (" (after retries)" if e.status_code >= 500 else "")
    if isinstance(e, wikipediaapi.WikiConnectionError):
        return "connection failed (after retries)"
    if isinstance(e, wikipediaapi.WikiInvalidJsonError):
        return "the API answered with invalid JSON"
    return f"{type(e).__name__}: {e}"


def fetch_lead(client: Any, label: str, title: str) -> FetchResult:
    """Fetch the lead section of `title` and return its cleaned first sentence, or why not."""
    import wikipediaapi

    from pipeline.describe.sentence import clean_lead, looks_like_disambiguation

    page = client.page(title)
    try:
        lead = client.extracts(page, exintro=1)
        if not page.exists():
            return FetchResult(label, title, MISSING, detail=f"no Wikipedia page titled {title!r}")
        if looks_like_disambiguation(lead):
            return FetchResult(label, title, DISAMBIGUATION, detail=f"{title!r} is a disambiguation page")
        categories = client.categories(page, clcategories="|".join(DISAMBIGUATION_CATEGORIES))
        if categories:
            return FetchResult(label, title, DISAMBIGUATION, detail=f"{title!r} is a disambiguation page")
    except wikipediaapi.WikipediaException as e:
        return FetchResult(label, title, ERROR, detail=_describe_error(e))
    sentence = clean_lead(lead)
    if not sentence:
        return FetchResult(label, title, EMPTY, detail=f"{title!r} has an empty lead section")
    return FetchResult(label, title, OK, text=sentence)


def fetch_batch(items: list[tuple[str, str]], cfg: FetchConfig, transport: Any = None) -> list[FetchResult]:
    """Fetch (label, title) pairs one after another with one client (one connection pool)."""
    client = make_client(cfg, transport)
    return [fetch_lead(client, label, title) for label, title in items]
