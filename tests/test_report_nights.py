"""The report of nights that did not end complete: marked, never drawn like whole nights.

Four real nights against the emulator (complete, cut by the budget, refused credentials,
a job the API rejects); the report of each is checked as written, and the last one in
headless Chromium at 400 px, where no label may stand over an empty cell.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from intersect_batch.report import write_report
from tests.test_report import Chromium, Node, open_tab, parse
from tests.test_status_command import NIGHTS, _nights


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("report-nights") / "out"
    anyio.run(_nights, folder)
    for date in NIGHTS.values():
        write_report(folder / date.isoformat())
    return folder


def _page(out: Path, night: str) -> Node:
    return parse((out / NIGHTS[night].isoformat() / "report.html").read_text())


def _new_lost(root: Node) -> str:
    [card] = root.one("div", data_totals="night").find_all(data_stat="new-lost")
    return card.find_all("span")[1].text()


def _columns(root: Node, chart: str) -> dict[str, str | None]:
    figure = root.one("figure", data_chart=chart)
    return {
        str(g.attrs["data-label"]): g.attrs.get("data-mark")
        for g in figure.find_all("g")
        if "bar" in str(g.attrs.get("class", "")).split()
    }


def test_a_night_that_reached_nothing_says_so_and_has_no_diff(out: Path) -> None:
    root = _page(out, "unreached")
    head = root.one("section", id="run").one("h2")
    assert head.one("small").attrs["data-condition"] == "unreached"
    assert " ".join(head.text().split()) == (
        "Run 2026-11-28 no answer from the API: nothing fetched, exit status 4"
    )
    assert _new_lost(root) == "no diff"


def test_a_partial_night_says_so_and_has_no_diff(out: Path) -> None:
    root = _page(out, "partial")
    head = root.one("section", id="run").one("h2")
    assert head.one("small").attrs["data-condition"] == "partial"
    assert "partial: some jobs stopped before they finished, exit status 1" in head.text()
    assert _new_lost(root) == "no diff"


def test_history_charts_mark_the_nights_that_did_not_finish(out: Path) -> None:
    root = _page(out, "attention")
    summary = json.loads((out / "2026-11-29" / "run.json").read_text())["night"]
    assert _new_lost(root) == f"+{summary['new_items']:,} / −{summary['lost_items']:,}"
    marks = {"11-26": None, "11-27": "partial", "11-28": "no answer", "11-29": None}
    for chart in ("run-history-items", "run-history-cost"):
        assert _columns(root, chart) == marks
    beta = root.one("section", id="job-beta")
    assert _columns(beta, "history-items") == {
        "11-26": None, "11-27": "partial", "11-28": "partial", "11-29": "failed",
    }  # fmt: skip
    # The mark is written where the value would be, and the tooltip keeps the figure.
    figure = root.one("figure", data_chart="run-history-items")
    [unreached] = [g for g in figure.find_all("g") if g.attrs.get("data-mark") == "no answer"]
    assert next(t.text() for t in unreached.find_all("text")) == "no answer"
    assert unreached.one("title").text() == "11-28: 0 (no answer)"


EMPTY_LABELS_JS = """
(function () {
  var found = [];
  document.querySelectorAll("table.reflow td").forEach(function (td) {
    if (getComputedStyle(td).display !== "none" && td.textContent.trim() === "") {
      found.push(td.closest("section").id + " " + td.getAttribute("data-label"));
    }
  });
  return JSON.stringify(found);
})()
"""


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chromium]:
    chromium = Chromium(tmp_path_factory.mktemp("chromium") / "profile")
    try:
        yield chromium
    finally:
        chromium.close()


def test_on_a_phone_no_label_stands_over_nothing(out: Path, browser: Chromium) -> None:
    page = out / "2026-11-29" / "report.html"
    # The failed job's new and lost cells are empty: the case this is about.
    root = parse(page.read_text())
    row = root.one("tr", data_job="beta")
    empty = [td.attrs["data-label"] for td in row.find_all("td") if not td.text().strip()]
    assert empty == ["new", "lost"]
    phone = open_tab(browser, page.as_uri(), 400)
    assert json.loads(phone.evaluate(EMPTY_LABELS_JS)) == []
    wide = open_tab(browser, page.as_uri(), 1400)
    # At full width the table keeps its columns: the empty cells are there, under headings.
    assert "run new" in json.loads(wide.evaluate(EMPTY_LABELS_JS))
