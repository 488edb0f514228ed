"""Render report.html in headless Chromium: every image must load and no section may be empty."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed "
                                "(apt-get install -y chromium; .ci/run does it when it can)")

# Counts broken images and empty sections once the page has loaded, into document.title.
PROBE = """<script>
window.addEventListener('load', function () {
  var imgs = Array.from(document.images);
  var bad = imgs.filter(function (i) { return !i.complete || i.naturalWidth === 0; }).length;
  var secs = Array.from(document.querySelectorAll('section'));
  var empty = secs.filter(function (s) {
    var body = Array.from(s.children).filter(function (c) { return c.tagName !== 'H2'; });
    return body.length === 0 || body.every(function (c) {
      return c.textContent.trim() === '' && c.tagName !== 'IMG' && !c.querySelector('img'); });
  }).map(function (s) { return s.id; });
  document.title = 'PROBE imgs=' + imgs.length + ' bad=' + bad + ' sections=' + secs.length +
                   ' empty=' + (empty.join(',') || '-');
});
</script>"""


def chromium_flags(profile: Path) -> list[str]:
    return [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
            f"--user-data-dir={profile}"]


def test_report_renders_with_every_image_and_section(tmp_path):
    from benchmark.cli import main
    from benchmark.report import build_report

    run = tmp_path / "run"
    assert main(["run", "--suite", "linear-regression", "--out", str(run), "--param", "d=4", "--param", "max_shots=3",
                 "--param", "n_prompts=16", "--param", "pool_size=8", "--episodes", "5",
                 "--shots", "0..3", "--predictors", "lookup,ridge,icl-transformer",
                 "--no-report", "--quiet"]) == 0
    page = build_report([run], run)
    probe = page.with_name("probe.html")
    probe.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    cmd = chromium_flags(tmp_path / "profile") + ["--virtual-time-budget=10000", "--dump-dom",
                                                  probe.as_uri()]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    m = re.search(r"<title>PROBE imgs=(\d+) bad=(\d+) sections=(\d+) empty=([^<]*)</title>", r.stdout)
    assert m, f"chromium gave no probe result (rc={r.returncode}): {r.stderr[-2000:]}"
    imgs, bad, sections, empty = int(m[1]), int(m[2]), int(m[3]), m[4]
    assert imgs >= 2 and bad == 0, f"{bad} of {imgs} images failed to load"
    assert sections >= 5 and empty == "-", f"empty sections: {empty}"
