"""The run report in a real browser: headless Chromium loads the page from a file, as a person would."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from netbed.report import load_run, write_html, write_junit
from netbed.scenarios import find, runner

SCENARIOS = ["server-process-killed", "server-host-reboot"]
ARTEFACTS = Path(os.environ.get("NETBED_TEST_ARTEFACTS", "test-artefacts"))


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("run")
    results = runner.run_many(find(SCENARIOS), folder, jobs=2)
    assert all(r.passed for r in results)
    return folder


@pytest.fixture
def browser():
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert chromium and driver, "Debian's chromium and chromium-driver are needed (make test installs them)"
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1300,2400"):
        options.add_argument(flag)
    with webdriver.Chrome(service=Service(driver), options=options) as chrome:
        yield chrome


def test_report_page_shows_every_scenario_and_its_ladder(run_folder, browser):
    page = write_html(load_run(run_folder), run_folder / "report.html")
    browser.get(page.as_uri())
    rows = browser.find_elements(By.CSS_SELECTOR, "details.scenario")
    assert [r.get_attribute("id") for r in rows] == ["server-process-killed", "server-host-reboot"]
    assert all(r.get_attribute("data-passed") == "true" for r in rows)

    reboot = browser.find_element(By.ID, "server-host-reboot")
    assert not reboot.find_element(By.CSS_SELECTOR, ".ladder").is_displayed()
    reboot.find_element(By.TAG_NAME, "summary").click()
    svg = reboot.find_element(By.CSS_SELECTOR, ".ladder svg")
    assert svg.is_displayed()
    labels = [t.text for t in svg.find_elements(By.TAG_NAME, "text")]
    assert sum("retransmission" in t for t in labels) >= 2, "the retransmissions into the crashed host"
    assert any(t.startswith("R ") or t == "R" for t in labels), "the rebooted host's RST"
    checks = reboot.find_elements(By.CSS_SELECTOR, "tr.check")
    assert checks and all("ok" in c.get_attribute("class") for c in checks)
    ARTEFACTS.mkdir(exist_ok=True)
    browser.execute_script("arguments[0].scrollIntoView()", reboot)
    assert browser.save_screenshot(str(ARTEFACTS / "report-server-host-reboot.png"))


def test_junit_xml_has_one_case_per_scenario(run_folder):
    import xml.etree.ElementTree as ET

    suite = ET.parse(write_junit(load_run(run_folder), run_folder / "junit.xml")).getroot()
    assert suite.get("tests") == "2" and suite.get("failures") == "0"
    assert {c.get("name") for c in suite.iter("testcase")} == set(SCENARIOS)
