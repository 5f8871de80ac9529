"""Real-browser test of the Dagster UI over a fresh prefgate home (Debian chromium driven by Playwright).

The home is made with the ``prefgate`` CLI (``init``, then ``land`` the bundled sample once ``dagster dev`` serves
it on a free port and its landing sensor is stopped). Chromium then checks that the catalog lists the pipeline's
assets and materializes ``raw_prompts`` by clicking its Materialize button; the run must reach SUCCESS through the
run queue and the daemon, seen both in the GraphQL API and on the run's page in the UI.

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

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SAMPLE_LANDING = PROJECT_ROOT / "data" / "sample" / "landing"
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
SERVER_TIMEOUT_S = 120
RUN_TIMEOUT_S = 180
UI_TIMEOUT_MS = 60_000
SENSORS_QUERY = """
{
  repositoriesOrError {
    __typename
    ... on RepositoryConnection { nodes { sensors { name sensorState { id status } } } }
    ... on PythonError { message }
  }
}
"""
STOP_SENSOR = """
mutation Stop($id: String!) {
  stopSensor(id: $id) {
    __typename
    ... on StopSensorMutationResult { instigationState { status } }
    ... on PythonError { message }
  }
}
"""
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

    def stop_sensor(self, name: str) -> None:
        result = self.graphql(SENSORS_QUERY)["repositoriesOrError"]
        assert result["__typename"] == "RepositoryConnection", result
        states = [s["sensorState"] for repo in result["nodes"] for s in repo["sensors"] if s["name"] == name]
        assert len(states) == 1, f"sensor {name!r}: {result}"
        stopped = self.graphql(STOP_SENSOR, {"id": states[0]["id"]})["stopSensor"]
        assert stopped.get("instigationState", {}).get("status") == "STOPPED", stopped

    def runs(self, run_ids: list[str] | None = None) -> list[dict[str, Any]]:
        result = self.graphql(RUNS_QUERY, {"filter": {"runIds": run_ids}} if run_ids else None)["runsOrError"]
        assert result["__typename"] == "Runs", result
        runs: list[dict[str, Any]] = result["results"]
        return runs


def _prefgate(home: Path, *args: str) -> None:
    proc = subprocess.run(
        [str(BIN / "prefgate"), "--home", str(home), *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, f"prefgate {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"


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


@pytest.fixture
def dagster_ui(tmp_path: Path) -> Iterator[DagsterUI]:
    """``dagster dev`` over a new home holding the bundled sample; the process group is always stopped."""
    home = tmp_path / "home"
    _prefgate(home, "init")
    dagster_home = home / "dagster"
    assert (dagster_home / "dagster.yaml").is_file()
    # The instance's one-time "Join the Dagster community" dialog would cover the page: mark it seen.
    (dagster_home / ".nux").mkdir(exist_ok=True)
    (dagster_home / ".nux" / "nux.yaml").write_text("seen: 1\n")

    port = _free_port()
    ui = DagsterUI(url=f"http://127.0.0.1:{port}", home=home, log=tmp_path / "dagster-dev.log")
    env = {**os.environ, "PREFGATE_HOME": str(home), "DAGSTER_HOME": str(dagster_home)}
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
        # landing_sensor (running by default) would queue ingest_job and a labels_job per batch ahead of the run
        # under test, ~40 s behind the one-run-at-a-time queue: stop it first, then land the sample.
        ui.stop_sensor("landing_sensor")
        _prefgate(home, "land", str(SAMPLE_LANDING))
        assert any((home / "landing").rglob("*.*")), "prefgate land copied nothing"
        yield ui
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


def test_catalog_and_materialize_from_ui(browser: Browser, dagster_ui: DagsterUI, tmp_path: Path) -> None:
    """The catalog lists the pipeline's assets; Materialize on raw_prompts launches a run that succeeds."""
    page = browser.new_page(viewport={"width": 1400, "height": 1600})  # tall: the catalog table is virtualized
    page.set_default_timeout(UI_TIMEOUT_MS)
    with _debug_on_failure(page, dagster_ui, tmp_path / "failure.png"):
        # 1. The catalog lists every asset of the graph, each linking to its own page.
        page.goto(f"{dagster_ui.url}/assets")
        for name in ASSETS:
            link = page.locator(f'a[href="/assets/{name}"]').first
            expect(link).to_be_visible()
            expect(link).to_contain_text(name)

        # 2. Materialize raw_prompts from its asset page. It is a multi_asset that cannot be subset, so the UI asks
        #    to confirm that quarantine_raw_prompts is materialized with it.
        before = {run["runId"] for run in dagster_ui.runs()}
        page.goto(f"{dagster_ui.url}/assets/raw_prompts")
        button = page.get_by_role("button", name=re.compile(r"^(materialization )?Materialize$"))
        expect(button).to_be_enabled()  # disabled until the asset's definition has loaded
        button.click()
        confirm = page.get_by_role("dialog").get_by_role("button", name="Confirm", exact=True)
        launched = page.get_by_text(re.compile(r"^Launched run [0-9a-f]{8}$"))
        expect(confirm.or_(launched)).to_be_visible()
        if confirm.is_visible():
            expect(page.get_by_role("dialog")).to_contain_text("quarantine_raw_prompts")
            confirm.click()
        expect(launched).to_be_visible()
        short_id = launched.inner_text().split()[-1]

        # 3. The API knows that run: new, launched by hand (not by the landing sensor), both outputs selected.
        new_runs = [r for r in dagster_ui.runs() if r["runId"] not in before and r["runId"].startswith(short_id)]
        assert len(new_runs) == 1, new_runs
        run_id = new_runs[0]["runId"]
        tags = {t["key"]: t["value"] for t in new_runs[0]["tags"]}
        assert "dagster/sensor_name" not in tags, tags
        assert sorted("/".join(a["path"]) for a in new_runs[0]["assetSelection"]) == [
            "quarantine_raw_prompts",
            "raw_prompts",
        ]

        # 4. It goes through the queue and succeeds, per the API and on its page in the UI.
        _wait_for_run(dagster_ui, run_id)
        page.goto(f"{dagster_ui.url}/runs/{run_id}")
        expect(page.get_by_text(short_id, exact=True).first).to_be_visible()
        expect(page.get_by_text("Success", exact=True).first).to_be_visible()
        expect(page.get_by_text("RUN_SUCCESS", exact=True).first).to_be_attached()
