"""--report FILE.html: each kind of page in a real headless Chromium (Debian's, driven by
Playwright): no console errors, no request but data: pictures, every picture decodes, the
numbers shown are the JSON report's, and a hostile file name stays text."""

import json
import os
import shutil

import pytest

HOSTILE = "<img src=x onerror=alert(1)><script>alert(2)<!--.png"


def chromium_path():
    for candidate in (os.environ.get("CONVCLI_CHROMIUM"), shutil.which("chromium"),
                      shutil.which("chromium-browser"), "/usr/bin/chromium"):
        if candidate and os.path.exists(candidate):
            return candidate
    return None


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for the session (skips, with the reason, where there is none)."""
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="Playwright is not installed (pip install playwright)")
    path = chromium_path()
    if path is None:
        pytest.skip("no chromium executable (apt-get install chromium)")
    manager = sync_api.sync_playwright().start()
    try:
        instance = manager.chromium.launch(executable_path=path, args=["--no-sandbox"],
                                           timeout=30_000)
    except sync_api.Error as exc:
        manager.stop()
        pytest.skip(f"chromium at {path} does not start: {str(exc).splitlines()[0]}")
    yield instance
    instance.close()
    manager.stop()


class Visit:
    """A page opened in the browser, with what went wrong while it loaded."""

    def __init__(self, browser, path):
        self.page = browser.new_page(viewport={"width": 1280, "height": 900})
        self.problems, self.requests, self.dialogs = [], [], []
        self.page.on("console", lambda m: m.type in ("error", "warning")
                     and self.problems.append(f"console {m.type}: {m.text}"))
        self.page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        self.page.on("requestfailed", lambda r: self.problems.append(f"failed: {r.url[:80]}"))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.url = path.resolve().as_uri()
        self.page.goto(self.url, wait_until="load", timeout=20_000)

    def scroll_through(self):
        """Scroll to the end step by step, so lazily loaded pictures come in."""
        self.page.evaluate("""async () => {
            for (let y = 0; y < document.body.scrollHeight; y += 600) {
                window.scrollTo(0, y); await new Promise(r => setTimeout(r, 30)); }
            window.scrollTo(0, document.body.scrollHeight);
            await new Promise(r => setTimeout(r, 100)); }""")

    def check_clean(self, pictures: bool = True):
        """No console error, failed request, script dialog, or request but data: pictures
        (the page itself aside); every picture (if the page has `pictures`) decoded."""
        assert self.problems == []
        assert self.dialogs == []
        assert all(url == self.url or url.startswith("data:") for url in self.requests), \
            self.requests
        sizes = self.page.evaluate(
            "[...document.images].map(i => [i.complete, i.naturalWidth, !!i.dataset.src])")
        assert bool(sizes) == pictures
        assert all(done and width > 0 and not lazy for done, width, lazy in sizes), sizes

    def data(self):
        """{data-key: [(value, shown text)]} of every number on the page."""
        found = {}
        for key, value, text in self.page.evaluate(
                "[...document.querySelectorAll('[data-key]')]"
                ".map(e => [e.dataset.key, e.dataset.value, e.textContent])"):
            found.setdefault(key, []).append((json.loads(value), text))
        return found

    def close(self):
        self.page.close()


@pytest.fixture
def visit(browser):
    opened = []

    def open_page(path):
        opened.append(Visit(browser, path))
        return opened[-1]

    yield open_page
    for page in opened:
        page.close()


def shown_number(text):
    return float(text.replace(",", "").replace("%", "").replace("×", "").split()[0])


def test_apply_page(tmp_path, samples, run, visit):
    from convcli.htmlreport import milliseconds, number_text

    source = tmp_path / HOSTILE
    shutil.copy(samples / "camera.png", source)
    args = ["apply", source, "-k", "sobel", "-k", "box:3", "-o", tmp_path / "out.png"]
    assert run(*args, "--report", tmp_path / "r.json").exit_code == 0
    assert run(*args, "--report", tmp_path / "r.html").exit_code == 0
    report = json.loads((tmp_path / "r.json").read_text())
    page = visit(tmp_path / "r.html")
    page.check_clean()
    assert len(page.page.query_selector_all("img")) == 2 + 2      # in, out, two crop matrices
    data = page.data()
    for key in ("min", "max", "clipped_fraction"):
        assert data[key][0][0] == pytest.approx(report["range"][key])
    assert shown_number(data["clipped_fraction"][0][1]) == \
        pytest.approx(100 * report["range"]["clipped_fraction"], abs=0.005)
    assert [v for v, _ in data["algorithm"]] == [s["algorithm"] for s in report["stages"]]
    assert len(data["seconds"]) == len(report["stages"])         # each stage's own time
    assert all(text == milliseconds(value) for value, text in data["seconds"])
    weights = [w for stage in report["stages"] for f in stage["weights"] for row in f for w in row]
    assert [v for v, _ in data["weights"]] == weights
    assert [shown_number(t) for _, t in data["weights"]] == pytest.approx(weights, rel=1e-3)
    for index, stage in enumerate(report["stages"]):
        for key in ("conv_params", "dense_params", "conv_macs", "dense_macs"):
            value, text = data[key][index]
            assert value == stage["conv_vs_dense"][key] and text == number_text(value)
    assert HOSTILE in page.page.inner_text("body")                # shown, as text


def test_batch_contact_sheet(tmp_path, samples, run, visit):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(samples / "camera.png", folder / HOSTILE)
    shutil.copy(samples / "astronaut.png", folder / "astronaut.png")
    (folder / "broken.png").write_bytes(b"not a png")
    args = ["apply", folder, "-k", "sobel", "-o", tmp_path / "out", "--overwrite"]
    run(*args, "--report", tmp_path / "b.json")
    result = run(*args, "--report", tmp_path / "b.html")
    assert result.exit_code == 1                                  # one failure
    report = json.loads((tmp_path / "b.json").read_text())
    page = visit(tmp_path / "b.html")
    page.scroll_through()
    page.check_clean()
    assert len(page.page.query_selector_all("img")) == 4         # before and after, twice
    cards = page.page.query_selector_all(".card")
    assert "failed" in cards[0].get_attribute("class")            # failures first
    failure = next(f for f in report["files"] if f["status"] == "failed")
    assert failure["error"] in cards[0].inner_text().replace("\n", " ")
    data = page.data()
    for key in ("inputs", "done", "failed", "skipped"):
        value, text = data[f"totals.{key}"][0]
        assert value == report["totals"][key] and int(text) == value
    names = page.page.eval_on_selector_all(".name", "els => els.map(e => e.textContent)")
    assert str(folder / HOSTILE) in names


@pytest.mark.parametrize("shape, conv, dense", [("5x5", 9, 225), ("4x4", 9, 64)])
def test_stats_page_the_articles_comparisons(tmp_path, run, visit, shape, conv, dense):
    args = ["stats", "--input", shape, "-k", "box:3"]
    assert run(*args, "--report", tmp_path / "s.html").exit_code == 0
    report = json.loads(run(*args, "--json").output)
    assert (report["conv_params"], report["dense_params"]) == (conv, dense)
    page = visit(tmp_path / "s.html")
    page.check_clean(pictures=False)
    data = page.data()
    for key in ("conv_params", "dense_params", "conv_macs", "dense_macs", "param_ratio"):
        assert data[key][0][0] == report[key]
    assert shown_number(data["dense_params"][0][1]) == dense
    assert page.page.query_selector("svg rect") is not None        # the bars


def test_stats_page_of_the_articles_rgb_example(tmp_path, run, visit):
    """27 weights against 11,289,600,000 for a 3×3 box on each channel of 224² RGB."""
    args = ["stats", "--input", "3x224x224", "-k", "box:3", "--dense-out", "75000"]
    assert run(*args, "--report", tmp_path / "s.html").exit_code == 0
    report = json.loads(run(*args, "--json").output)
    page = visit(tmp_path / "s.html")
    page.check_clean(pictures=False)
    data = page.data()
    assert data["conv_params"][0] == (report["conv_params"], "27")
    assert data["dense_params"][0] == (report["dense_params"], "11,289,600,000")


def test_matrix_page(tmp_path, run, visit):
    args = ["matrix", "--input", "4x4", "-k", "[[1,2,3],[4,5,6],[7,8,9]]"]
    assert run(*args, "--report", tmp_path / "m.html").exit_code == 0
    summary = json.loads(run(*args, "--json").output)
    page = visit(tmp_path / "m.html")
    page.check_clean()
    data = page.data()
    assert data["matrix_shape"][0] == (summary["matrix_shape"], "4×16")
    assert data["nonzeros"][0][0] == summary["nonzeros"] == 36
    width = page.page.evaluate("document.images[0].naturalWidth")
    assert width > 16                                             # 16 columns, enlarged


def test_pages_forbid_requests_and_foreign_scripts(tmp_path, run):
    """The policy is in every page: a request or an injected script would be refused."""
    run("stats", "--input", "5x5", "-k", "box:3", "--report", tmp_path / "s.html")
    text = (tmp_path / "s.html").read_text()
    assert "default-src 'none'; img-src data:" in text
    assert "<script" not in text                                   # stats needs none


def test_contact_sheet_loads_thumbnails_as_they_scroll_into_view(tmp_path, visit):
    """Of 400 files, only the first screens' thumbnails are decoded on opening; the rest
    come in while scrolling."""
    import numpy as np
    from PIL import Image

    from convcli.htmlreport import batch_page, write_page

    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8)).save(tmp_path / "t.png")
    files = [{"source": str(tmp_path / "t.png"), "target": str(tmp_path / "t.png"),
              "status": "done", "seconds": 0.01, "error": None, "input_shape": [8, 8, 1],
              "output_shape": [8, 8, 1]} for _ in range(400)]
    totals = {"inputs": 400, "done": 400, "skipped": 0, "failed": 0, "not_started": 0,
              "seconds": 4.0, "images_per_second": 100.0, "interrupted": None}
    write_page(tmp_path / "b.html", batch_page({"files": files, "totals": totals}))
    page = visit(tmp_path / "b.html")
    loaded = page.page.evaluate("[...document.images].filter(i => i.naturalWidth > 0).length")
    assert 0 < loaded < 200
    page.scroll_through()
    page.check_clean()
    assert page.page.evaluate("document.images.length") == 800


def test_forward_page(tmp_path, samples, run, visit):
    import yaml

    net = tmp_path / "net.yaml"
    net.write_text(yaml.safe_dump({"name": "small", "input": [1, 64, 64], "layers": [
        {"name": "conv1", "type": "conv", "out": 4, "k": 3, "s": 2, "p": 1},
        {"name": "relu1", "type": "relu"},
        {"name": "pool1", "type": "maxpool", "k": 2, "s": 2},
        {"name": "conv2", "type": "conv", "out": 6, "k": 3, "p": 1},
        {"name": "flatten", "type": "flatten"}, {"name": "fc", "type": "dense", "out": 3}]}))
    from PIL import Image

    image = tmp_path / HOSTILE                       # the network's 64×64, as receptive-field
    Image.open(samples / "camera.png").resize((64, 64)).save(image, format="PNG")
    args = ["forward", image, net, "-o", tmp_path / "maps", "--rf-overlay", tmp_path / "rf.png",
            "--at", "3,4"]
    assert run(*args, "--report", tmp_path / "f.json").exit_code == 0
    assert run(*args, "--report", tmp_path / "f.html").exit_code == 0
    report = json.loads((tmp_path / "f.json").read_text())
    page = visit(tmp_path / "f.html")
    page.check_clean()
    assert page.page.evaluate("document.images.length") == 1 + len(report["maps"])
    data = page.data()
    for record in report["maps"]:
        assert data[f"{record['layer']}.min"][0][0] == pytest.approx(record["min"])
        assert data[f"{record['layer']}.max"][0][0] == pytest.approx(record["max"])
    table = json.loads(run("receptive-field", net, "--json").output)
    shown = {record["layer"] for record in report["maps"]}       # forward runs spatial layers
    for layer in table["layers"]:
        if layer["name"] not in shown:
            assert f"{layer['name']}.params" not in data
            continue
        assert data[f"{layer['name']}.params"][0][0] == layer["params"]
        for key in ("rf", "stride", "padding"):
            assert data[f"{layer['name']}.{key}"][0][0] == layer[key]
    # r: 3 (conv1) → 3 + 1·2 = 5 (pool1, S = 4) → 5 + 2·4 = 13 (conv2)
    assert data["conv1.rf"][0] == (3, "3") and data["conv2.rf"][0] == (13, "13")
    assert HOSTILE in page.page.inner_text("body")


@pytest.mark.parametrize("command", [["stats"], ["matrix"]])
def test_report_json_is_what_json_prints(tmp_path, run, command):
    args = [*command, "--input", "4x4", "-k", "box:3"]
    assert run(*args, "--report", tmp_path / "r.json").exit_code == 0
    assert json.loads((tmp_path / "r.json").read_text()) == json.loads(run(*args, "--json").output)


def test_report_under_a_file_is_one_line(tmp_path, run):
    (tmp_path / "file").write_text("")
    result = run("stats", "--input", "4x4", "-k", "box:3", "--report",
                 tmp_path / "file" / "r.html")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "r.html" in result.output
