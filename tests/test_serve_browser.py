"""The page in the real browser: Debian's headless Chromium through chromedriver (nothing downloaded).

Uploads a Set5 image, waits for the result, moves the before/after slider and pans, downloads the result and
compares it with `swinir restore`'s output, reloads to see the job again, and checks the phone layout.
What a person sees is checked as seen: an element counts as shown only when the browser renders it (computed
style up the tree, and a non-zero size), never because it is in the DOM. Screenshots go to
$SWINIR_TEST_ARTIFACTS (default: test-artifacts/ in the repository); assets/serve_page.png is the first one.
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
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

from swinir import zoo  # noqa: E402
from swinir.io import write_image  # noqa: E402
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
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # failed loads (a 404 favicon) land here
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


_SEEN = """
const el = arguments[0];
const box = el.getBoundingClientRect();
return el.checkVisibility({visibilityProperty: true, opacityProperty: true}) && box.width > 0 && box.height > 0;
"""


def _seen(driver: object, element: object) -> bool:
    """Whether a person sees ``element``: rendered (no display:none or visibility:hidden on it or above)
    and with an area, not merely present in the DOM."""
    return bool(driver.execute_script(_SEEN, element))


def _seen_controls(driver: object, panel: object) -> dict[str, bool]:
    names = ("viewer", "slider", "zoom", "download", "cancel")
    return {n: _seen(driver, panel.find_element(By.CLASS_NAME, n)) for n in names}


def _panel_of(driver: object, filename: str) -> object | None:
    for group in driver.find_elements(By.CLASS_NAME, "group"):
        if group.find_element(By.CLASS_NAME, "group-title").text == filename:
            return group.find_element(By.CLASS_NAME, "panel")
    return None


def _state_of(driver: object, filename: str) -> str | None:
    panel = _panel_of(driver, filename)
    return None if panel is None else panel.get_attribute("data-state")


def _severe_console_lines(driver: object) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def _divider_at(driver: object, panel: object, fraction: float | None = None, key: str | None = None) -> dict:
    """Move the slider (to ``fraction`` of its range, or with a key press as a person would), then where
    the divider's centre and the restored image's edges are on the screen."""
    slider = panel.find_element(By.CLASS_NAME, "slider")
    if key is not None:
        slider.send_keys(key)
    else:
        driver.execute_script(
            "const s = arguments[0]; s.value = String(Number(s.max) * arguments[1]);"
            "s.dispatchEvent(new Event('input', {bubbles: true}));",
            slider,
            fraction,
        )
    return driver.execute_script(
        """const p = arguments[0];
        const line = p.querySelector('.divider').getBoundingClientRect();
        const img = p.querySelector('.after').getBoundingClientRect();
        const view = p.querySelector('.viewer').getBoundingClientRect();
        return {at: line.left + line.width / 2, left: Math.max(img.left, view.left),
                right: Math.min(img.right, view.right), imgWidth: img.width};""",
        panel,
    )


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
        wait.until(lambda d: d.execute_script("return document.querySelector('.before').naturalWidth") == 64)
        assert _severe_console_lines(driver) == []  # no failed load (the favicon was a 404)
        assert _seen_controls(driver, panel) == {
            "viewer": True,
            "slider": True,
            "zoom": True,
            "download": True,
            "cancel": False,
        }
        sides = [panel.find_element(By.CLASS_NAME, c) for c in ("side-before", "side-after")]
        assert [e.text for e in sides] == ["input", "builtin-x4"] and all(_seen(driver, e) for e in sides)
        before_box, after_box = (e.rect for e in sides)
        assert before_box["x"] + before_box["width"] < after_box["x"]  # input on the left, the model's on the right

        # the slider spans the image: its ends put the divider on the image's edges, its middle in the middle
        for fraction in (0.0, 0.25, 0.5, 0.75, 1.0):
            got = _divider_at(driver, panel, fraction)
            assert got["imgWidth"] == 256
            assert abs(got["at"] - (got["left"] + fraction * (got["right"] - got["left"]))) <= 1.0, (fraction, got)
        got = _divider_at(driver, panel, key=Keys.HOME)
        assert abs(got["at"] - got["left"]) <= 1.0, got
        assert not _seen(driver, sides[0]) and _seen(driver, sides[1])  # only the result is on show
        got = _divider_at(driver, panel, key=Keys.END)
        assert abs(got["at"] - got["right"]) <= 1.0, got
        Select(panel.find_element(By.CLASS_NAME, "zoom")).select_by_visible_text("4:1")  # wider than the viewer
        for key, edge in ((Keys.HOME, "left"), (Keys.END, "right")):
            got = _divider_at(driver, panel, key=key)
            assert got["imgWidth"] == 1024 and abs(got["at"] - got[edge]) <= 1.0, got
        Select(panel.find_element(By.CLASS_NAME, "zoom")).select_by_visible_text("1:1")
        _divider_at(driver, panel, 0.5)

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


def test_controls_show_only_where_they_apply(browser: tuple, tmp_path: Path) -> None:
    """Queued, running, cancelled, failed and refused jobs have no result: no viewer, slider, zoom or
    download on screen; Cancel only while a job can still be cancelled."""
    driver, _ = browser
    env = {"SWINIR_CACHE": str(tmp_path / "empty-cache"), zoo.URL_ENV: "http://127.0.0.1:9/release"}  # offline
    srv = ServeProcess(tmp_path / "srv", "--models", "builtin-x4,classical-x2", env=env)
    try:
        slow, small, notes = tmp_path / "slow.png", tmp_path / "small.png", tmp_path / "notes.png"
        slow.write_bytes(png_bytes(noise_image(192, 192)))
        small.write_bytes(png_bytes(noise_image(16, 16)))
        notes.write_bytes(b"hello, this is text and not a picture")
        driver.get(srv.url + "/")
        wait = WebDriverWait(driver, 60)
        wait.until(lambda d: len(Select(d.find_element(By.ID, "model")).options) == 2)
        Select(driver.find_element(By.ID, "model")).select_by_value("builtin-x4")
        for field, value in (("tile", "16"), ("overlap", "8")):
            driver.find_element(By.ID, field).clear()
            driver.find_element(By.ID, field).send_keys(value)
        driver.find_element(By.ID, "ensemble").click()  # x8 work: the first job runs long enough to look at
        driver.find_element(By.ID, "files").send_keys("\n".join(str(p) for p in (slow, small, notes)))
        driver.find_element(By.ID, "run").click()

        wait.until(lambda d: _state_of(d, "slow.png") == "running")
        running, queued, refused = (_panel_of(driver, n) for n in ("slow.png", "small.png", "notes.png"))
        assert queued.get_attribute("data-state") == "queued"
        no_result = {"viewer": False, "slider": False, "zoom": False, "download": False}
        for panel in (running, queued):
            assert _seen_controls(driver, panel) == {**no_result, "cancel": True}, panel.text
        # the bad file is reported on its own panel and in the message; the other two were taken
        assert refused.get_attribute("data-state") == "refused"
        assert _seen_controls(driver, refused) == {**no_result, "cancel": False}
        assert "refused (415)" in refused.text and "not an image" in refused.text
        message = driver.find_element(By.ID, "message").text
        assert "2 of 3 submitted" in message and "notes.png: not an image" in message

        for panel in (queued, running):
            panel.find_element(By.CLASS_NAME, "cancel").click()
        wait.until(lambda d: all(p.get_attribute("data-state") == "cancelled" for p in (running, queued)))
        for panel in (running, queued):
            assert _seen_controls(driver, panel) == {**no_result, "cancel": False}

        Select(driver.find_element(By.ID, "model")).select_by_value("classical-x2")  # cannot download: fails
        driver.find_element(By.ID, "ensemble").click()
        driver.find_element(By.ID, "files").clear()
        driver.find_element(By.ID, "files").send_keys(str(small))
        driver.find_element(By.ID, "run").click()
        failed = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, ".panel[data-state=failed]"))
        assert "could not download classical-x2" in failed.find_element(By.CLASS_NAME, "detail").text
        assert _seen_controls(driver, failed) == {**no_result, "cancel": False}
        driver.execute_script("window.scrollTo(0, 0)")
        driver.save_screenshot(str(_artifacts() / "serve_page_states.png"))
    finally:
        srv.stop()


def test_a_tiff_input_is_compared_through_its_png_preview(browser: tuple, tmp_path: Path) -> None:
    """Chromium cannot draw TIFF: the "before" side must still show the input, at its own size."""
    driver, _ = browser
    srv = ServeProcess(tmp_path / "srv", "--models", "builtin-x2")
    try:
        rgb16 = noise_image(20, 28).astype(np.uint16) * 257
        image = write_image(tmp_path / "scan.tif", rgb16)
        driver.get(srv.url + "/")
        WebDriverWait(driver, 30).until(lambda d: len(Select(d.find_element(By.ID, "model")).options) == 1)
        driver.find_element(By.ID, "files").send_keys(str(image))
        driver.find_element(By.ID, "run").click()
        panel = WebDriverWait(driver, 300).until(lambda d: d.find_element(By.CSS_SELECTOR, ".panel[data-state=done]"))
        natural = "const i = arguments[0].querySelector(arguments[1]); return i.complete ? [i.naturalWidth, i.naturalHeight] : null;"
        WebDriverWait(driver, 30).until(lambda d: d.execute_script(natural, panel, ".before") is not None)
        assert driver.execute_script(natural, panel, ".before") == [28, 20]  # the input's size, decoded
        WebDriverWait(driver, 30).until(lambda d: d.execute_script(natural, panel, ".after") == [56, 40])
        before = panel.find_element(By.CLASS_NAME, "before")
        assert _seen(driver, before) and before.size == {"width": 56, "height": 40}  # drawn over the result
        assert _severe_console_lines(driver) == []
    finally:
        srv.stop()
