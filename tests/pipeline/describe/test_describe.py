"""ssiw describe: lead-sentence cleaning, fetching against a fake MediaWiki API, the cache, precedence."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from support.labelspace_fixtures import load_small_taxonomy, write_taxonomy

from pipeline.describe.cache import CachedDescription, cache_path, read_cache, write_cache
from pipeline.describe.run import describe_labels
from pipeline.describe.sentence import clean_lead, label_text
from pipeline.describe.texts import label_entries
from pipeline.describe.wiki import FetchConfig

FAST = {"user_agent": "ssiw-test/0 (https://example.org/ssiw-tests)", "timeout_s": 1.0, "retry_wait_s": 0.01}

LEADS = {
    "Cat": "The cat (Felis catus), also called the domestic cat (/kæt/ listen), is a small carnivorous mammal.[1] "
    "It is the only domesticated species of its family.",
    "Dog": "The dog is a domesticated descendant of the gray wolf. It is kept as a pet.",
    "Horse": "The horse (Equus ferus caballus) is a large odd-toed ungulate mammal.",
    "Bus": "A bus (contracted from omnibus; pl.: buses) is a motor vehicle that carries many passengers.",
    "Truck": "A truck or lorry is a motor vehicle designed to transport freight.",
    "Car": "A car, or an automobile, is a motor vehicle with wheels.",
    "Automobile": "Automobile may refer to:\nCar, a wheeled motor vehicle",  # disambiguation by its text
    "Road": "A road is a thoroughfare for the conveyance of traffic.",
    "Sky": "The sky is an unobstructed view upward from the surface of the Earth.",
    # "Sidewalk" is absent: a missing page.
}
CATEGORY_DISAMBIGUATION = {"Dog"}  # disambiguation known only from its category, in some tests


class FakeWiki:
    """Answers MediaWiki `extracts` and `categories` queries; `faults[title]` lists what the next
    requests for that title get first (an HTTP status or "timeout") before the real answer."""

    def __init__(self, faults=None, disambiguation_categories=(), delay_s=0.0):
        self.faults = {k: list(v) for k, v in (faults or {}).items()}
        self.disambiguation_categories = set(disambiguation_categories)
        self.delay_s = delay_s
        self.requests: list[tuple[str, str]] = []  # (prop, title)
        self.user_agents: set[str] = set()
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()

    def answer(self, params: dict[str, str], user_agent: str) -> tuple[int | str, dict]:
        title, prop = params["titles"], params["prop"]
        with self._lock:
            self.requests.append((prop, title))
            self.user_agents.add(user_agent)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            fault = self.faults[title].pop(0) if self.faults.get(title) else None
        try:
            time.sleep(self.delay_s)
            if fault is not None:
                return fault, {}
            if title not in LEADS:
                return 200, {"query": {"pages": {"-1": {"ns": 0, "title": title, "missing": ""}}}}
            page = {"pageid": 100 + len(title), "ns": 0, "title": title}
            if prop == "extracts":
                # Without exintro the API returns the whole article; we only ever want the lead.
                body = "\n\n== History ==\nLater text." if "exintro" not in params else ""
                page["extract"] = LEADS[title] + body
            elif title in self.disambiguation_categories:
                page["categories"] = [{"ns": 14, "title": "Category:All disambiguation pages"}]
            return 200, {"query": {"pages": {str(page["pageid"]): page}}}
        finally:
            with self._lock:
                self.in_flight -= 1

    def transport(self) -> httpx.MockTransport:
        def handle(request: httpx.Request) -> httpx.Response:
            params = {k: v for k, v in request.url.params.items()}
            status, body = self.answer(params, request.headers.get("user-agent", ""))
            if status == "timeout":
                raise httpx.ReadTimeout("fake timeout", request=request)
            return httpx.Response(status, json=body)

        return httpx.MockTransport(handle)


def run(tmp_path: Path, fake: FakeWiki | None = None, **kwargs):
    taxset = load_small_taxonomy(tmp_path / "tax")
    fake = fake or FakeWiki()
    kwargs.setdefault("use_ray", False)
    report = describe_labels(
        taxset, tmp_path / "cache", fetch_config=FetchConfig(**FAST), transport=fake.transport(), **kwargs
    )
    return taxset, report, read_cache(cache_path(tmp_path / "cache"))


# -- cleaning ------------------------------------------------------------------------------------


def test_clean_lead_drops_parentheticals_pronunciation_and_footnotes():
    assert clean_lead(LEADS["Cat"]) == "The cat, also called the domestic cat, is a small carnivorous mammal."
    assert clean_lead(LEADS["Bus"]) == "A bus is a motor vehicle that carries many passengers."
    assert clean_lead("Zebras /ˈzɛbrə/ listen are African equines.") == "Zebras are African equines."


def test_clean_lead_does_not_cut_at_abbreviations_or_initials():
    lead = (
        "The Ford Model T was built by the Ford Motor Co. in the U.S. from c. 1908 by H. Ford. It sold well."
    )
    assert (
        clean_lead(lead)
        == "The Ford Model T was built by the Ford Motor Co. in the U.S. from c. 1908 by H. Ford."
    )
    assert clean_lead("A road is a way\nSecond paragraph.") == "A road is a way."
    assert clean_lead("") == ""


def test_label_text_format():
    assert label_text("deer", "A deer is a hoofed mammal.") == "An image of deer. A deer is a hoofed mammal."
    assert label_text("deer", "") == "An image of deer."


# -- fetching --------------------------------------------------------------------------------------


def test_success_missing_and_disambiguation(tmp_path):
    fake = FakeWiki(disambiguation_categories={"Dog"})
    _, report, cache = run(tmp_path, fake)
    by_label = {r.label: r for r in report.fetched}
    assert by_label["cat"].status == "ok"
    assert cache["cat"].source == "wikipedia"
    assert cache["cat"].text == "The cat, also called the domestic cat, is a small carnivorous mammal."
    assert by_label["sidewalk"].status == "missing" and "Sidewalk" in by_label["sidewalk"].detail
    assert by_label["automobile"].status == "disambiguation"  # "may refer to" in its lead
    assert by_label["dog"].status == "disambiguation"  # only its category says so
    # Never written as text: those labels fall back to the registry's description.
    for key in ("sidewalk", "automobile", "dog"):
        assert cache[key].source == "registry"
        assert cache[key].text.startswith(f"A{'n' if key == 'automobile' else ''} {key}")
    assert report.sources == {"wikipedia": 7, "registry": 3}
    assert all(ua.startswith("ssiw-test/0 (https://example.org/ssiw-tests)") for ua in fake.user_agents)


def test_rate_limit_then_success_is_retried(tmp_path):
    fake = FakeWiki(faults={"Bus": [429, 503]})
    _, report, cache = run(tmp_path, fake)
    assert {r.label: r.status for r in report.fetched}["bus"] == "ok"
    assert cache["bus"].text == "A bus is a motor vehicle that carries many passengers."
    assert fake.requests.count(("extracts", "Bus")) == 3  # 429, 503, then the answer


def test_timeout_once_recovers_and_persistent_timeout_is_reported(tmp_path):
    fake = FakeWiki(faults={"Car": ["timeout"], "Truck": ["timeout"] * 10})
    _, report, cache = run(tmp_path, fake)
    by_label = {r.label: r for r in report.fetched}
    assert by_label["car"].status == "ok" and cache["car"].source == "wikipedia"
    assert by_label["truck"].status == "error" and "timed out" in by_label["truck"].detail
    assert cache["truck"].source == "registry"
    assert fake.requests.count(("extracts", "Truck")) == 4  # one try and three retries


def test_cached_labels_are_not_fetched_again_unless_refresh(tmp_path):
    run(tmp_path, FakeWiki())
    again = FakeWiki()
    _, _, cache = run(tmp_path, again)
    # Only labels without a Wikipedia sentence are asked for again.
    assert {t for _, t in again.requests} == {"Sidewalk", "Automobile"}
    assert cache["cat"].source == "wikipedia"
    refreshed = FakeWiki(faults={"Cat": ["timeout"] * 10})
    _, _, cache = run(tmp_path, refreshed, refresh=True)
    assert len({t for _, t in refreshed.requests}) == 10
    # A transient failure on refresh keeps the sentence fetched before.
    assert cache["cat"].source == "wikipedia" and cache["cat"].text.startswith("The cat")


def test_offline_never_touches_the_network_and_fills_every_label(tmp_path):
    fake = FakeWiki()
    taxset, _, cache = run(tmp_path, fake, offline=True)
    assert fake.requests == []
    assert set(cache) == set(taxset.registry.labels)
    assert all(row.source == "registry" for row in cache.values())


def test_concurrency_is_capped(tmp_path):
    fake = FakeWiki(delay_s=0.02)
    run(tmp_path, fake, workers=2)
    assert fake.max_in_flight == 2  # two clients at a time, each one request at a time


def test_precedence_override_then_cache_then_registry(tmp_path):
    taxset = load_small_taxonomy(tmp_path / "tax")
    cache = {
        "cat": CachedDescription.now("cat", "Cat", "A cat from Wikipedia.", "wikipedia"),
        "sidewalk": CachedDescription.now("sidewalk", "Sidewalk", "A sidewalk from Wikipedia.", "wikipedia"),
        # Fetched for a title the registry no longer uses: stale, ignored.
        "dog": CachedDescription.now("dog", "Dog (animal)", "An old dog sentence.", "wikipedia"),
    }
    entries = {e.key: e for e in label_entries(taxset, cache)}
    assert entries["cat"].text() == "An image of cat. A cat from Wikipedia."
    assert entries["dog"].source == "registry" and "wolf" in entries["dog"].description
    assert (
        entries["beta/pavement"].text()
        == "An image of sidewalk. A pavement is a paved footpath at the side of a road."
    )
    assert entries["beta/pavement"].source == "override" and entries["beta/pavement"].base_label == "sidewalk"
    assert entries["sidewalk"].description == "A sidewalk from Wikipedia."
    assert entries["cat"].text("word") == "cat"
    assert len(entries) == len(taxset.registry.labels) + 1


def test_damaged_cache_names_the_file(tmp_path):
    path = cache_path(tmp_path)
    path.write_bytes(b"not parquet")
    with pytest.raises(ValueError, match="descriptions.parquet"):
        read_cache(path)


def test_cache_round_trip_is_atomic(tmp_path):
    rows = {"cat": CachedDescription.now("cat", "Cat", "A cat.", "wikipedia")}
    write_cache(cache_path(tmp_path), rows)
    assert read_cache(cache_path(tmp_path))["cat"].text == "A cat."
    assert [p.name for p in tmp_path.iterdir()] == ["descriptions.parquet"]  # no temporary left behind


# -- Ray and the command line ------------------------------------------------------------------------


@pytest.fixture()
def fake_server():
    """The fake MediaWiki API over HTTP on 127.0.0.1, reachable from Ray workers."""
    fake = FakeWiki(faults={"Road": [503]})

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            params = {k: v[0] for k, v in parse_qs(urlparse(self.path).query).items()}
            status, body = fake.answer(params, self.headers.get("User-Agent", ""))
            data = json.dumps(body).encode()
            self.send_response(int(status))
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield fake, f"http://127.0.0.1:{server.server_address[1]}/w/api.php"
    server.shutdown()
    server.server_close()


def test_ray_tasks_fetch_from_a_local_server(tmp_path, ray_session, fake_server):
    fake, url = fake_server
    taxset = load_small_taxonomy(tmp_path / "tax")
    report = describe_labels(
        taxset, tmp_path / "cache", use_ray=True, workers=2, fetch_config=FetchConfig(api_url=url, **FAST)
    )
    cache = read_cache(cache_path(tmp_path / "cache"))
    assert {r.label: r.status for r in report.fetched}["road"] == "ok"  # after one 503
    assert cache["road"].text == "A road is a thoroughfare for the conveyance of traffic."
    assert cache["sidewalk"].source == "registry"
    assert fake.requests.count(("extracts", "Road")) == 2


def test_cli_offline(tmp_path):
    from typer.testing import CliRunner

    from pipeline.cli import app

    tax = write_taxonomy(tmp_path / "tax")
    result = CliRunner().invoke(
        app, ["describe", "--offline", "--taxonomies", str(tax), "--cache", str(tmp_path / "cache")]
    )
    assert result.exit_code == 0, result.output
    assert "10 from registry" in result.output
    assert len(read_cache(cache_path(tmp_path / "cache"))) == 10


def test_cli_reports_a_bad_taxonomy_folder(tmp_path):
    from typer.testing import CliRunner

    from pipeline.cli import app

    tax = write_taxonomy(tmp_path / "tax")
    (tax / "beta.yaml").write_text((tax / "beta.yaml").read_text().replace("label: truck", "label: lorry"))
    result = CliRunner().invoke(app, ["describe", "--offline", "--taxonomies", str(tax)])
    assert result.exit_code == 1
    assert "beta.yaml" in result.output and "unknown label 'lorry'" in result.output


def test_unreachable_network_stops_after_one_label(tmp_path):
    """A machine without network must fail in seconds with advice, not retry every label."""
    import httpx

    from pipeline.describe.run import WikipediaUnreachable, describe_labels
    from pipeline.describe.wiki import FetchConfig

    calls = []

    def refuse(request):
        calls.append(request)
        raise httpx.ConnectError("connection refused", request=request)

    taxset = _unreachable_taxset(tmp_path)
    cfg = FetchConfig(user_agent="ssiw-test", max_retries=0, retry_wait_s=0.0)
    with pytest.raises(WikipediaUnreachable, match="--offline"):
        describe_labels(taxset, tmp_path / "cache", use_ray=False, workers=2, fetch_config=cfg,
                        transport=httpx.MockTransport(refuse))
    assert len(calls) == 1
    assert not (tmp_path / "cache" / "descriptions.parquet").exists()


def _unreachable_taxset(tmp_path):
    from pipeline.taxonomy.load import load_taxonomy_set

    folder = tmp_path / "tax"
    folder.mkdir()
    labels = "\n".join(
        f"  l{i}: {{name: thing{i}, wikipedia: Thing{i}, group: other, description: A thing number {i}.}}"
        for i in range(5)
    )
    (folder / "labels.yaml").write_text("standalone: true\nlabels:\n" + labels + "\n")
    classes = "\n".join(f"  - {{raw_id: {i + 1}, name: thing{i}, label: l{i}}}" for i in range(5))
    (folder / "toy.yaml").write_text(
        "name: toy\nversion: '1'\nhomepage: https://example.org\nformat: png_folder\nsupervision: dense\n"
        "splits:\n  train: {images: 'i/*.jpg', annotations: 'a/*.png'}\nclasses:\n" + classes + "\n"
    )
    return load_taxonomy_set(folder)
