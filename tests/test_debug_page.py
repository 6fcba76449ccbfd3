"""GET /debug in a real headless Chromium (Debian's chromium + chromium-driver), used as a person would.

The API runs in-process (werkzeug's server in a thread) over the demo knowledge base. Set
ES_FAQ_SCREENSHOT=docs/debug-page.png to also save a screenshot of the page with results."""

from __future__ import annotations

import json
import os
import re
import shutil
import threading

import pytest
import requests
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait
from werkzeug.serving import make_server

from es_faq.api.app import create_app
from es_faq.config.settings import REPO_ROOT
from es_faq.search.pipeline import Searcher

QUERY = "小橙花可以晚几天还吗"  # a similar question of demo-031, word for word
TOP = "demo-031"
MODE = "rerank"  # chosen on the page: every stage, the cross-encoder's included
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--window-size=1400,1000"]
INSTALL = "apt-get install -y chromium chromium-driver (scripts/test installs them when run as root)"


@pytest.fixture(scope="module")
def server(rerank_settings, es, embedder, analyzer, demo_alias):
    """The app over the demo knowledge base, on a free loopback port."""
    served = rerank_settings.replace(index_alias=demo_alias, query_log_enabled=False)
    app = create_app(served, Searcher(served, es, embedder, analyzer))
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, name="debug-page-server", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    thread.join()


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium; a machine without one fails here, loudly, rather than skipping."""
    binary, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not binary or not driver_path:
        pytest.fail(f"chromium and chromedriver must be on PATH for the debug-page test: {INSTALL}")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in FLAGS:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    except WebDriverException as exc:
        pytest.fail(f"chromium could not be started ({binary}, {driver_path}): {exc.msg}")
    yield driver
    driver.quit()


def _search(browser, query: str, mode: str | None = None) -> str:
    """Type the query (and pick a mode), press Search, wait for the page to say it is done; its final state."""
    if mode:
        Select(browser.find_element(By.ID, "mode")).select_by_value(mode)
    box = browser.find_element(By.ID, "query")
    box.clear()
    box.send_keys(query)
    browser.execute_script("document.body.dataset.state = 'submitted'")  # not a stale done/error
    browser.find_element(By.ID, "search").click()
    WebDriverWait(browser, 60).until(
        lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-state") in ("done", "error"))
    return browser.find_element(By.TAG_NAME, "body").get_attribute("data-state")


def _text(browser, element_id: str) -> str:
    return browser.find_element(By.ID, element_id).get_attribute("textContent")


def _screenshot(browser) -> None:
    target = os.environ.get("ES_FAQ_SCREENSHOT")
    if not target:
        return
    path = REPO_ROOT / target
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1400, min(height + 20, 2400))
    browser.execute_script("window.scrollTo(0, 0)")
    browser.save_screenshot(str(path))


def test_the_page_is_self_contained(server):
    response = requests.get(f"{server}/debug", timeout=10)
    assert response.status_code == 200 and response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "connect-src 'self'" in response.headers["Content-Security-Policy"]
    page = response.text
    assert not re.search(r"\b(src|href)\s*=|@import|url\(", page)  # nothing fetched from elsewhere


def test_a_search_shows_every_stage_side_by_side(browser, server, demo_alias):
    browser.get(f"{server}/debug")
    assert _search(browser, QUERY, MODE) == "done", _text(browser, "error")
    # What the API said for the same search, to compare with what the page shows.
    api = requests.post(f"{server}/v1/search", json={"query": QUERY, "debug": True, "mode": MODE}, timeout=30).json()
    analysis = api["analysis"]
    final = api["hits"][0]["faq_id"]

    assert _text(browser, "original") == QUERY and _text(browser, "normalized") == analysis["normalized"]
    tokens = [chip.text for chip in browser.find_elements(By.CSS_SELECTOR, "#tokens .token")]
    assert tokens == analysis["tokens"] and "小橙花" in tokens

    columns = {c.get_attribute("data-stage"): c for c in browser.find_elements(By.CSS_SELECTOR, "#stages .stage")}
    assert set(columns) == {"lexical", "vector", "fused", "reranked", "decided"}
    for name, column in columns.items():
        ids = [row.get_attribute("data-faq-id") for row in column.find_elements(By.TAG_NAME, "li")]
        assert TOP in ids or name == "decided", (name, ids)  # decided: only the head the decision scored
        highlighted = [row.get_attribute("data-faq-id") for row in column.find_elements(By.CSS_SELECTOR, "li.top")]
        assert highlighted == ([final] if final in ids else []), name  # the FAQ that ends up first, in every stage
    assert browser.find_element(By.CSS_SELECTOR, "#hits tr.top").get_attribute("data-faq-id") == final

    first, _, body = _text(browser, "es-request").partition("\n")
    assert first == f"GET {demo_alias}/_search"
    assert json.loads(body) == api["es_request"]  # the exact body, ready for Kibana Dev Tools
    timings = {row.get_attribute("data-stage") for row in browser.find_elements(By.CSS_SELECTOR, "#timings tr")}
    assert {"analyze", "embed", "retrieve", "rerank", "total"} <= timings
    decision = browser.find_element(By.ID, "decision").text
    assert api["decision"]["action"] in decision
    # Why: the calibrated probability and the two features behind it, as the API gave them.
    why = {row.get_attribute("data-why"): row.find_elements(By.TAG_NAME, "td")[1].text
           for row in browser.find_elements(By.CSS_SELECTOR, "#decision tr")}
    assert why == {"probability": f"{api['decision']['probability']:.3f}",
                   "pair_score": f"{api['decision']['pair_score']:.2f}",
                   # decide_depth 1 scores the first hit alone: no runner-up, no margin
                   "margin": "—" if api["decision"]["margin"] is None else f"{api['decision']['margin']:.2f}",
                   "orders": str(api["decision"]["orders"])}  # 1, or 2 where P(right) came near a threshold
    assert "?q=" in browser.current_url  # the search can be shared as a link

    browser.find_element(By.ID, "copy-request").click()
    WebDriverWait(browser, 10).until(lambda d: _text(d, "copy-note"))
    assert _text(browser, "copy-note") in ("copied", "could not copy: select the text and copy it")
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors  # no script error, nothing the CSP refused
    _screenshot(browser)


def test_an_api_error_is_shown_on_the_page(browser, server):
    browser.get(f"{server}/debug")
    assert _search(browser, "") == "error"
    error = browser.find_element(By.ID, "error")
    assert error.is_displayed() and error.text == "400 invalid_input: query is empty"
    assert not browser.find_element(By.ID, "results").is_displayed()

    browser.find_element(By.ID, "k").send_keys("1000")
    assert _search(browser, QUERY, MODE) == "error"
    assert re.fullmatch(r"400 invalid_input: k must be an integer from 1 to \d+", error.text)


def test_a_link_runs_its_search(browser, server):
    browser.get(f"{server}/debug?q=%E5%BF%98%E4%BA%86%E6%94%AF%E4%BB%98%E5%AF%86%E7%A0%81&mode=bm25&k=3")
    WebDriverWait(browser, 60).until(
        lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-state") == "done")
    assert browser.find_element(By.ID, "mode").get_attribute("value") == "bm25"
    assert len(browser.find_elements(By.CSS_SELECTOR, "#hits tr[data-faq-id]")) == 3
    assert browser.find_element(By.CSS_SELECTOR, "#hits tr.top").get_attribute("data-faq-id") == "demo-001"
