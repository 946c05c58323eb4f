"""The page in the real browser: Debian's headless Chromium through chromedriver (nothing downloaded).

Uploads a Set5 image, waits for the result, moves the before/after slider and pans, downloads the result and
compares it with `swinir restore`'s output, reloads to see the job again, and checks the phone layout.
Screenshots go to $SWINIR_TEST_ARTIFACTS (default: test-artifacts/ in the repository).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the [serve] extra is not installed")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (the [test] extra has it)")

from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

from swinir.paths import shared_dir  # noqa: E402
from swinir.serve.restore_call import JobOptions  # noqa: E402
from test_serve import ServeProcess, cli_restore, noise_image, png_bytes  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def _browser() -> tuple[str, str]:
    chrome = next((p for n in ("chromium", "chromium-browser", "google-chrome") if (p := shutil.which(n))), None)
    driver = shutil.which("chromedriver")
    if not chrome or not driver:
        if os.environ.get("SWINIR_REQUIRE_BROWSER"):  # set by .ci/run, which installs them
            pytest.fail("Chromium and chromedriver not found although SWINIR_REQUIRE_BROWSER is set")
        pytest.skip("Chromium and chromedriver not found: apt-get install chromium chromium-driver (.ci/run does)")
    return chrome, driver


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[tuple[object, Path]]:
    chrome, driver_path = _browser()
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    opts = webdriver.ChromeOptions()
    opts.binary_location = chrome
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,800"):
        opts.add_argument(arg)
    opts.add_experimental_option(
        "prefs", {"download.default_directory": str(downloads), "download.prompt_for_download": False}
    )
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=opts)
    _viewport(driver, 1280, 800, mobile=False)
    driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    try:
        yield driver, downloads
    finally:
        driver.quit()


def _viewport(driver: object, width: int, height: int, mobile: bool) -> None:
    """The page's own size (a window size would include the browser's frame)."""
    metrics = {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)


def _set5_image(tmp_path: Path) -> Path:
    shared = shared_dir()
    src = shared / "data" / "Set5" / "LR_bicubic" / "X4" / "butterflyx4.png" if shared else None
    if src is not None and src.is_file():
        return src
    out = tmp_path / "butterfly.png"  # CI without the shared data: a synthetic image of the same size
    out.write_bytes(png_bytes(noise_image(64, 64)))
    return out


def _artifacts() -> Path:
    folder = Path(os.environ.get("SWINIR_TEST_ARTIFACTS", REPO / "test-artifacts"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _wait_file(folder: Path, timeout_s: float = 30) -> Path:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        done = [p for p in folder.iterdir() if not p.name.endswith(".crdownload")]
        if done:
            return done[0]
        time.sleep(0.1)
    raise AssertionError(f"no download in {folder} after {timeout_s} s")


def test_upload_watch_compare_download_in_chromium(browser: tuple, tmp_path: Path) -> None:
    driver, downloads = browser
    models = "builtin-x4,builtin-x2,builtin-denoise,classical-x2,swin2sr-classical-x2"  # released: listed, not fetched
    srv = ServeProcess(tmp_path / "srv", "--models", models)
    try:
        image = _set5_image(tmp_path)
        driver.get(srv.url + "/")
        wait = WebDriverWait(driver, 30)
        wait.until(lambda d: len(Select(d.find_element(By.ID, "model")).options) == 5)
        assert Select(driver.find_element(By.ID, "model")).first_selected_option.get_attribute("value") == "builtin-x4"
        groups = [g.get_attribute("label") for g in driver.find_elements(By.CSS_SELECTOR, "#model optgroup")]
        assert groups == [  # one group per task and architecture family
            "Super-resolution (compact) · built-in",
            "Denoising · built-in",
            "Super-resolution (classical) · SwinIR",
            "Super-resolution (classical) · Swin2SR",
        ]
        assert driver.find_element(By.ID, "model-desc").text  # the one-line description

        driver.find_element(By.ID, "files").send_keys(str(image))
        driver.find_element(By.ID, "run").click()
        panel = WebDriverWait(driver, 300).until(
            lambda d: d.find_element(By.CSS_SELECTOR, ".panel[data-state=done], .panel[data-state=failed]")
        )
        assert panel.get_attribute("data-state") == "done", panel.text
        elapsed_ms = int(panel.get_attribute("data-elapsed-ms"))
        print(f"\nbrowser: upload to result {elapsed_ms} ms for {image.name} with builtin-x4")
        wait.until(lambda d: d.execute_script("return document.querySelector('.after').naturalWidth") == 256)

        split = int(panel.get_attribute("data-split"))
        slider = panel.find_element(By.CLASS_NAME, "slider")
        ActionChains(driver).click_and_hold(slider).move_by_offset(-60, 0).release().perform()
        assert int(panel.get_attribute("data-split")) < split  # the slider moved the before/after cut
        stage = panel.find_element(By.CLASS_NAME, "stage")
        before_pan = stage.get_attribute("style")
        Select(panel.find_element(By.CLASS_NAME, "zoom")).select_by_visible_text("2:1")
        viewer = panel.find_element(By.CLASS_NAME, "viewer")
        ActionChains(driver).click_and_hold(viewer).move_by_offset(40, 30).release().perform()
        assert stage.get_attribute("style") != before_pan  # zoomed and panned
        Select(panel.find_element(By.CLASS_NAME, "zoom")).select_by_visible_text("1:1")
        driver.execute_script("window.scrollTo(0, 0)")
        driver.save_screenshot(str(_artifacts() / "serve_page.png"))

        panel.find_element(By.CLASS_NAME, "download").click()
        got = _wait_file(downloads)
        want = cli_restore(image, tmp_path / "cli", "builtin-x4", JobOptions().cli_args())
        assert got.name == want.name and got.read_bytes() == want.read_bytes()

        driver.refresh()  # recent jobs come back after a reload
        again = WebDriverWait(driver, 30).until(lambda d: d.find_element(By.CSS_SELECTOR, ".panel[data-state=done]"))
        assert image.name in driver.find_element(By.CSS_SELECTOR, ".group-title").text
        assert again.find_element(By.CLASS_NAME, "download").get_attribute("href").endswith("/result")

        _viewport(driver, 390, 844, mobile=True)  # a phone's width: nothing wider than the screen
        overflow = driver.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0
        driver.execute_script("document.querySelector('.panel').scrollIntoView()")
        driver.save_screenshot(str(_artifacts() / "serve_page_phone.png"))
    finally:
        srv.stop()


def test_two_models_side_by_side(browser: tuple, tmp_path: Path) -> None:
    driver, _ = browser
    srv = ServeProcess(tmp_path / "srv", "--models", "builtin-x4,builtin-x2")
    try:
        image = tmp_path / "small.png"
        image.write_bytes(png_bytes(np.ascontiguousarray(noise_image(24, 24))))
        driver.get(srv.url + "/")
        WebDriverWait(driver, 30).until(lambda d: len(Select(d.find_element(By.ID, "model")).options) == 2)
        Select(driver.find_element(By.ID, "compare")).select_by_value("builtin-x2")
        driver.find_element(By.ID, "files").send_keys(str(image))
        driver.find_element(By.ID, "run").click()
        WebDriverWait(driver, 300).until(
            lambda d: len(d.find_elements(By.CSS_SELECTOR, ".group .panel[data-state=done]")) == 2
        )
        (group,) = driver.find_elements(By.CLASS_NAME, "group")
        names = [e.text for e in group.find_elements(By.CLASS_NAME, "model-name")]
        assert sorted(names) == ["builtin-x2", "builtin-x4"]
        panels = group.find_elements(By.CLASS_NAME, "panel")
        assert panels[0].location["y"] == panels[1].location["y"]  # side by side at 1280x800
    finally:
        srv.stop()
