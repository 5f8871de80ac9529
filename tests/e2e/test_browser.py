"""UI acceptance test: real ``dagster dev`` over a home filled by ``prefgate run``, driven in real Chromium.

The home gets two main-job runs (the second under a policy whose alpha gate fails), then ``dagster dev`` starts
on it, as a team's morning would. Chromium then checks what a user sees: nothing replayed by the sensor, every
label batch materialized, rater_quality's tables with full reasons and its chart, alpha's history on the Plots
tab, the failing gate's sentence on the Checks tab, a check executed on its own, and rater_quality materialized
from the UI; and no asset marked stale after a rerun that changed no table. Screenshots of each page go to
``tests/e2e/output/`` (and the time from start to a usable asset page to ``timings.json`` there) so a reviewer
can look at them.

Never ``playwright install``: the browser is Debian's chromium (``scripts/ensure_chromium.sh``, run by ``make test``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml
from playwright.sync_api import Browser, Page, expect, sync_playwright

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

PROJECT_ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent  # the venv running pytest holds the `prefgate` and `dagster` scripts
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ASSETS = [
    "raw_prompts",
    "response_pairs",
    "human_labels",
    "judge_labels",
    "eval_prompts",
    "human_consensus",
    "preference_set",
    "preference_set_export",
]
OUTPUT = PROJECT_ROOT / "tests" / "e2e" / "output"
SERVER_TIMEOUT_S = 120
RUN_TIMEOUT_S = 180
UI_TIMEOUT_MS = 60_000
STALE_QUERY = "{ assetNodes { assetKey { path } staleStatus } }"
RUNS_QUERY = """
query Runs($filter: RunsFilter) {
  runsOrError(filter: $filter) {
    __typename
    ... on Runs { results { runId status tags { key value } assetSelection { path } } }
    ... on PythonError { message }
  }
}
"""


@dataclass(frozen=True)
class DagsterUI:
    """A running ``dagster dev`` over a temporary prefgate home."""

    url: str
    home: Path
    log: Path

    def log_tail(self, lines: int = 80) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(
            f"{self.url}/graphql", data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        with urllib.request.urlopen(request, timeout=15) as response:
            payload: dict[str, Any] = json.load(response)
        assert not payload.get("errors"), payload["errors"]
        data: dict[str, Any] = payload["data"]
        return data

    def runs(self, run_ids: list[str] | None = None) -> list[dict[str, Any]]:
        result = self.graphql(RUNS_QUERY, {"filter": {"runIds": run_ids}} if run_ids else None)["runsOrError"]
        assert result["__typename"] == "Runs", result
        runs: list[dict[str, Any]] = result["results"]
        return runs


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_for_server(ui: DagsterUI, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + SERVER_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"dagster dev exited with {proc.returncode}; log tail:\n{ui.log_tail()}")
        # refused / reset / timed out while it starts
        with contextlib.suppress(OSError), urllib.request.urlopen(f"{ui.url}/server_info", timeout=2) as response:
            if response.status == 200:
                return
        time.sleep(0.5)
    pytest.fail(f"dagster dev did not answer {ui.url}/server_info in {SERVER_TIMEOUT_S}s; log tail:\n{ui.log_tail()}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the whole process group (webserver, daemon, code servers, runs), then SIGKILL what is left."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)
    with contextlib.suppress(ProcessLookupError):  # children can outlive the group leader
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


@dataclass(frozen=True)
class FilledHome:
    """The home two `prefgate run`s filled, and what the UI must show of it."""

    ui: DagsterUI
    started: float  # time.monotonic() when dagster dev was started
    failing_sentence: str  # the alpha gate's sentence from the strict-policy run


def _run_cli(home: Path, *args: str, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        [str(BIN / "prefgate"), "--home", str(home), *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, **(env or {})},
    )
    return proc.stdout + proc.stderr


@pytest.fixture
def filled_home(tmp_path: Path) -> Iterator[FilledHome]:
    """Two main-job runs (the second fails the alpha gate by policy), then ``dagster dev`` on that home."""
    home = tmp_path / "home"
    out = _run_cli(home, "run", "--no-train", "--judges", "rules")
    assert "refresh_job                ok" in out, out[-3000:]
    strict = yaml.safe_load((PROJECT_ROOT / "config" / "policy.yaml").read_text())
    strict["agreement"]["min_alpha"] = 0.95
    (tmp_path / "strict.yaml").write_text(yaml.safe_dump(strict))
    out = _run_cli(
        home,
        "run",
        "--no-train",
        "--judges",
        "rules",
        "--no-sample",
        env={"PREFGATE_POLICY": str(tmp_path / "strict.yaml")},
    )
    found = re.search(r"blocking check rater_quality\.alpha_at_least_min failed: (.+)", out)
    assert found, out[-3000:]
    dagster_home = home / "dagster"
    # The instance's one-time "Join the Dagster community" dialog would cover the page: mark it seen.
    (dagster_home / ".nux").mkdir(exist_ok=True)
    (dagster_home / ".nux" / "nux.yaml").write_text("seen: 1\n")
    port = _free_port()
    ui = DagsterUI(url=f"http://127.0.0.1:{port}", home=home, log=tmp_path / "dagster-dev.log")
    env = {**os.environ, "PREFGATE_HOME": str(home), "DAGSTER_HOME": str(dagster_home)}
    env.pop("PREFGATE_POLICY", None)
    started = time.monotonic()
    with ui.log.open("wb") as log:
        proc = subprocess.Popen(
            [str(BIN / "dagster"), "dev", "-h", "127.0.0.1", "-p", str(port), "-m", "pipelines.definitions"],
            cwd=PROJECT_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_for_server(ui, proc)
        yield FilledHome(ui, started, found.group(1).strip())
    finally:
        _stop(proc)


@pytest.fixture
def browser() -> Iterator[Browser]:
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/ensure_chromium.sh (never `playwright install`)")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@contextlib.contextmanager
def _debug_on_failure(page: Page, ui: DagsterUI, shot: Path) -> Iterator[None]:
    """On any failure: a screenshot of the page and the tail of the dagster dev log, then re-raise."""
    try:
        yield
    except BaseException:
        with contextlib.suppress(Exception):
            page.screenshot(path=str(shot), full_page=True)
            print(f"\nscreenshot: {shot} (page {page.url})")
        print(f"\ndagster dev log tail ({ui.log}):\n{ui.log_tail()}")
        raise


def _wait_for_run(ui: DagsterUI, run_id: str) -> dict[str, Any]:
    """Poll the GraphQL API until the run succeeds; fail at once if it fails or is canceled."""
    deadline = time.monotonic() + RUN_TIMEOUT_S
    status = "unknown"
    while time.monotonic() < deadline:
        with contextlib.suppress(urllib.error.URLError):
            for run in ui.runs([run_id]):
                status = run["status"]
                if status == "SUCCESS":
                    return run
                if status in ("FAILURE", "CANCELED", "CANCELING"):
                    pytest.fail(f"run {run_id} ended {status}")
        time.sleep(1)
    pytest.fail(f"run {run_id} still {status} after {RUN_TIMEOUT_S}s (the queue runs one run at a time)")


def _shot(page: Page, name: str) -> None:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(OUTPUT / f"{name}.png"), full_page=True)


def _materialize(page: Page, ui: DagsterUI, asset: str, siblings: list[str]) -> str:
    """Click Materialize on an asset page (confirming a multi-asset's siblings); returns the run id."""
    page.goto(f"{ui.url}/assets/{asset}")
    button = page.get_by_role("button", name=re.compile(r"^(materialization )?Materialize$"))
    expect(button).to_be_enabled()  # disabled until the asset's definition has loaded
    button.click()
    confirm = page.get_by_role("dialog").get_by_role("button", name="Confirm", exact=True)
    launched = page.get_by_text(re.compile(r"^Launched run [0-9a-f]{8}$"))
    expect(confirm.or_(launched)).to_be_visible()
    if confirm.is_visible():
        for sibling in siblings:
            expect(page.get_by_role("dialog")).to_contain_text(sibling)
        confirm.click()
    expect(launched).to_be_visible()
    short_id = launched.inner_text().split()[-1]
    ids = [r["runId"] for r in ui.runs() if r["runId"].startswith(short_id)]
    assert len(ids) == 1, ids
    return str(ids[0])


def test_ui_acceptance(browser: Browser, filled_home: FilledHome) -> None:
    """What a team sees the morning after: see the module docstring for each promise."""
    filled = filled_home
    ui = filled.ui
    page = browser.new_page(viewport={"width": 1500, "height": 1400})
    page.set_default_timeout(UI_TIMEOUT_MS)
    timings: dict[str, float] = {}
    with _debug_on_failure(page, ui, OUTPUT / "failure.png"):
        # 0. Start to a usable asset page: the rater_quality page shows its latest materialization.
        page.goto(f"{ui.url}/assets/rater_quality")
        expect(page.get_by_text("Latest materialization").first).to_be_visible()
        expect(page.get_by_text("alpha_interval", exact=True)).to_be_visible()
        timings["dagster_dev_start_to_usable_asset_page_s"] = round(time.monotonic() - filled.started, 1)

        # 1. Nothing is stale: the second run rebuilt the same tables (content data versions), so no asset reads
        #    "Unsynced" / "Upstream data"; the train group was never run (--no-train) and is only missing.
        nodes = ui.graphql(STALE_QUERY)["assetNodes"]
        status = {"/".join(n["assetKey"]["path"]): n["staleStatus"] for n in nodes}
        assert {k for k, v in status.items() if v != "FRESH"} == {"reward_model", "dpo_policy", "model_eval"}, status
        assert {status[k] for k in ("reward_model", "dpo_policy", "model_eval")} == {"MISSING"}

        # 2. The catalog lists the pipeline's assets; label assets show every batch materialized.
        page.goto(f"{ui.url}/assets")
        for name in ASSETS:
            expect(page.locator(f'a[href="/assets/{name}"]').first).to_be_visible()
        page.goto(f"{ui.url}/assets/human_labels?view=partitions")
        expect(page.get_by_text("Materialized (3)")).to_be_visible()
        expect(page.get_by_text("Missing (0)")).to_be_visible()
        _shot(page, "01-human_labels-partitions")

        # 3. rater_quality: typed tables whose reasons are whole, and its chart one click away.
        con = duckdb.connect(str(ui.home / "warehouse.duckdb"), read_only=True)
        longest = con.execute(
            "SELECT flag_reasons FROM prefgate.rater_quality WHERE assessed ORDER BY agreement NULLS LAST, "
            "length(flag_reasons) DESC LIMIT 1"
        ).fetchone()[0]  # type: ignore[index]
        con.close()
        assert len(longest) > 80  # long enough that the old 80-character cut would show
        page.goto(f"{ui.url}/assets/rater_quality")
        expect(page.get_by_text("worst_raters", exact=True)).to_be_visible()
        expect(page.get_by_text(longest, exact=True).first).to_be_attached()
        _shot(page, "02-rater_quality")
        page.get_by_text("[Show Markdown]").first.click()
        chart = page.get_by_role("dialog").locator('img[src^="data:image/png;base64,"]')
        expect(chart).to_be_visible()
        assert chart.evaluate("img => img.naturalWidth") > 300
        page.wait_for_timeout(600)  # the dialog fades in
        _shot(page, "03-rater_quality-chart")
        page.keyboard.press("Escape")

        # 4. Plots: alpha's history across the two runs.
        page.get_by_role("button", name="Plots").click()
        expect(page.get_by_text("alpha", exact=True).first).to_be_visible()
        expect(page.locator("canvas").first).to_be_visible()
        _shot(page, "04-rater_quality-plots")

        # 5. The Checks tab shows the failing gate's sentence, as `prefgate run` printed it.
        page.goto(f"{ui.url}/assets/rater_quality?view=checks")
        expect(page.get_by_text("alpha_at_least_min").first).to_be_visible()
        assert re.fullmatch(
            r"alpha 0\.\d+ < 0\.95 required, short by 0\.\d+, over [\d,]+ labels on [\d,]+ items",
            filled.failing_sentence,
        ), filled.failing_sentence
        expect(page.get_by_text(filled.failing_sentence).first).to_be_visible()
        _shot(page, "05-rater_quality-checks")

        # 6. Nothing was launched by the sensors within 30 s of the start (a home `prefgate run` filled).
        time.sleep(max(0.0, 30 - (time.monotonic() - filled.started)))
        auto = [r for r in ui.runs() if any(t["key"] == "dagster/sensor_name" for t in r["tags"])]
        assert auto == [], auto
        assert "Sensor landing_sensor skipped: no new or changed landing files" in ui.log.read_text()

        # 7. A check executes on its own from the UI.
        before = {r["runId"] for r in ui.runs()}
        page.get_by_text("flagged_share_at_most_max").first.click()
        page.get_by_role("button", name=re.compile(r"^(\S+ )?Execute$")).click()  # not "Execute all"
        launched = page.get_by_text(re.compile(r"^Launched run [0-9a-f]{8}$"))
        expect(launched).to_be_visible()
        check_runs = [r["runId"] for r in ui.runs() if r["runId"] not in before]
        assert len(check_runs) == 1, check_runs
        _wait_for_run(ui, check_runs[0])

        # 8. Materializing rater_quality (with rater_drift, one multi-asset) from the UI succeeds, checks included.
        run_id = _materialize(page, ui, "rater_quality", ["rater_drift"])
        _wait_for_run(ui, run_id)
        page.goto(f"{ui.url}/runs/{run_id}")
        expect(page.get_by_text("Success", exact=True).first).to_be_visible()
        _shot(page, "06-materialize-run")
        page.goto(f"{ui.url}/assets/rater_quality?view=checks")
        expect(page.get_by_text(re.compile(r"^alpha 0\.\d+ ≥ 0\.30 required")).first).to_be_visible()
        _shot(page, "07-rater_quality-checks-after")
    (OUTPUT / "timings.json").write_text(json.dumps(timings, indent=2) + "\n")
    print(f"\nUI timings: {timings}; screenshots in {OUTPUT}")
