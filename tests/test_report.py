"""The visual adaptation report: PNGs that open, an index.html that references only them."""

from __future__ import annotations

import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import cv2
import pytest
import torch
from torch import Tensor

from ttblur.api import AdaptOutput, AdaptResult, adapt
from ttblur.registry import CONDITION_GENERATORS, DETECTORS, FLOWS, SYNTHESIZERS
from ttblur.report import REPORT_FILES, write_report
from ttblur.synth import load_photo, make_video
from ttblur.testing import standin_model
from ttblur.types import Selection

TINY = {
    "rsdm": {"patch_size": 32},
    "dbcgm": {"magnitude": "exposure"},  # the report also shows the fitted exposure
    "finetune": {"epochs": 1, "batch_size": 4},
}


@pytest.fixture(scope="module")
def video() -> Tensor:
    clip = make_video(
        load_photo("astronaut"), preset="bsd-2ms16ms", num_frames=7, size=(64, 80), seed=11
    )
    return clip.blurry


@pytest.fixture(scope="module")
def adapted(video: Tensor) -> tuple[torch.nn.Module, AdaptResult]:
    model = standin_model("estrnn")
    return model, adapt(model, video, spec="estrnn", config=TINY, progress=False)


class _References(HTMLParser):
    """Collects every ``src`` and ``href`` of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "img" and values.get("src"):
            self.images.append(str(values["src"]))
        if tag == "a" and values.get("href"):
            self.links.append(str(values["href"]))


def _references(index: Path) -> _References:
    parser = _References()
    parser.feed(index.read_text(encoding="utf-8"))
    return parser


def _check_png(path: Path) -> None:
    image = cv2.imread(str(path))
    assert image is not None, path
    height, width = image.shape[:2]
    assert 64 <= height <= 4000 and 64 <= width <= 4000, (path.name, image.shape)
    assert image.std() > 5.0, f"{path.name} is nearly uniform"


def test_full_report_writes_every_picture_and_references_only_them(
    adapted, video, tmp_path
) -> None:
    model, result = adapted
    index = write_report(result, video, tmp_path / "report", model=model, num_patches=3)
    assert index == tmp_path / "report" / "index.html"
    written = sorted(p.name for p in index.parent.glob("*.png"))
    assert written == sorted(REPORT_FILES.values())
    for name in written:
        _check_png(index.parent / name)
    refs = _references(index)
    assert sorted(refs.images) == written
    for target in refs.images + refs.links:
        assert (index.parent / target).is_file(), target
    text = index.read_text(encoding="utf-8")
    report = result.report
    assert f"{len(report.patches)} of {report.candidates} candidates" in text
    assert "model=model" not in text  # no note about missing before/after crops
    assert "Configuration" in text and "&quot;epochs&quot;: 1" in text


def test_conditions_sheet_has_one_row_per_patch(adapted, video, tmp_path) -> None:
    _, result = adapted
    sheets = {}
    for count in (1, 3):
        index = write_report(result, video, tmp_path / str(count), num_patches=count)
        sheets[count] = cv2.imread(str(index.parent / "conditions.png"))
    assert sheets[3].shape[0] > 2 * sheets[1].shape[0]
    assert sheets[3].shape[1] == sheets[1].shape[1]


def test_report_without_model_and_without_patches(video, tmp_path) -> None:
    class NothingSharp:
        def select(self, frames: Tensor) -> Selection:
            return Selection([], torch.zeros(frames.shape[0], 1, *frames.shape[2:]))

    with pytest.warns(RuntimeWarning, match="no pseudo-sharp patch"):
        result = adapt(
            standin_model("estrnn"),
            video,
            spec="estrnn",
            config=TINY,
            detector=NothingSharp(),
            progress=False,
        )
    index = write_report(result, video, tmp_path)
    written = sorted(p.name for p in tmp_path.glob("*.png"))
    assert written == ["magnitude.png", "patches.png"]
    for name in written:
        _check_png(tmp_path / name)
    assert sorted(_references(index).images) == written
    text = index.read_text(encoding="utf-8")
    for note in ("no condition maps", "model=model", "no loss curve"):
        assert note in text


def test_report_rejects_another_video_and_bad_counts(adapted, video, tmp_path) -> None:
    _, result = adapted
    with pytest.raises(ValueError, match="not the one adapted"):
        write_report(result, video[:6], tmp_path)
    with pytest.raises(ValueError, match="num_frames"):
        write_report(result, video, tmp_path, num_frames=0)
    with pytest.raises(TypeError, match=r"num_frames must be an integer, got float 2\.5"):
        write_report(result, video, tmp_path, num_frames=2.5)
    with pytest.raises(ValueError, match=r"\(T, 1, H, W\)"):
        write_report(result, video, tmp_path, magnitude=torch.zeros(7, 1, 8, 8))


def test_given_magnitude_maps_are_shown_instead_of_the_estimators(adapted, video, tmp_path) -> None:
    _, result = adapted
    ramp = torch.linspace(0, 40, 80).view(1, 1, 1, 80).expand(7, 1, 64, 80).contiguous()
    index = write_report(result, video, tmp_path, magnitude=ramp)
    heat = cv2.imread(str(index.parent / "magnitude.png")).astype(float)
    row = heat[6 + 22 + 60]  # inside the first tile, below its caption bar
    assert row[8:20].mean() + 100 < row[230:244].mean()  # dark (0 px) left, bright right


_CHECK_SCRIPT = """
<script>
window.addEventListener("load", () => {
  const images = Array.from(document.images);
  const broken = images.filter((i) => !(i.complete && i.naturalWidth > 0));
  document.body.setAttribute("data-images", String(images.length));
  document.body.setAttribute("data-broken", broken.map((i) => i.getAttribute("src")).join(","));
});
</script>
"""


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def test_every_image_loads_in_headless_chromium(adapted, video, tmp_path) -> None:
    browser = _chromium()
    if browser is None:
        pytest.skip(
            "needs a Chromium or Chrome binary on PATH (chromium, chromium-browser, "
            "google-chrome or chrome); .ci/run installs Debian's: apt-get install chromium"
        )
    model, result = adapted
    index = write_report(result, video, tmp_path, model=model, num_patches=2)
    # a copy of the page with a check script next to it, so relative image paths still resolve
    page = index.read_text(encoding="utf-8").replace("</body>", _CHECK_SCRIPT + "</body>")
    check = tmp_path / "check.html"
    check.write_text(page, encoding="utf-8")
    command = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--allow-file-access-from-files",
        "--virtual-time-budget=5000",
        "--dump-dom",
        check.as_uri(),
    ]
    # an installed browser that fails is a failure, not a skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0 and "<body" in done.stdout, (
        f"{browser} failed (status {done.returncode}): {done.stderr.strip()[-500:]}"
    )
    count = re.search(r'data-images="(\d+)"', done.stdout)
    broken = re.search(r'data-broken="([^"]*)"', done.stdout)
    assert count is not None and broken is not None, done.stdout[-500:]
    assert int(count.group(1)) == len(REPORT_FILES)
    assert broken.group(1) == "", f"images that did not load: {broken.group(1)}"


def test_report_draws_from_the_output_and_recomputes_nothing(
    adapted, video, tmp_path, monkeypatch
) -> None:
    """The output holds what the report shows (the whole-video exposure sets the blur length,
    the re-blurred patches are the training inputs), and writing it runs no stage."""
    _, result = adapted
    report = result.report
    assert isinstance(result, AdaptOutput)
    assert report.exposure_ratio is not None and report.motion_px is not None
    assert result.exposure is not None and result.exposure.ratio == report.exposure_ratio
    assert result.conditions is not None and result.pairs is not None
    expected = report.exposure_ratio * report.motion_px  # px
    z = result.conditions[:, 2]
    assert torch.allclose(z, torch.full_like(z, expected))
    assert result.selection.patches == report.patches
    assert result.reblurred is not None
    assert torch.equal(result.reblurred, result.pairs.inputs[:, result.pairs.centre])

    def explode(*args: object, **kwargs: object) -> None:
        raise AssertionError("the report must not build or run a stage")

    for registry in (DETECTORS, CONDITION_GENERATORS, SYNTHESIZERS, FLOWS):
        monkeypatch.setattr(registry, "build", explode)
    index = write_report(result, video, tmp_path, num_patches=2)
    assert (tmp_path / "conditions.png").exists() and index.exists()


def test_report_needs_the_output_and_deprecates_stage_arguments(adapted, video, tmp_path) -> None:
    _, result = adapted
    bare = AdaptResult(result.model, result.report, result.spec, result.device)
    with pytest.raises(TypeError, match="AdaptOutput"):
        write_report(bare, video, tmp_path)
    with pytest.warns(DeprecationWarning, match="synthesizer"):
        write_report(result, video, tmp_path, num_patches=1, synthesizer=lambda s, c: s)
    with pytest.raises(TypeError, match="unexpected keyword"):
        write_report(result, video, tmp_path, nope=1)


def test_the_report_says_who_chose_the_kept_epoch(adapted, video, tmp_path) -> None:
    model, result = adapted
    report = result.report
    assert report.guard_scores  # the default config runs the guard
    text = write_report(result, video, tmp_path / "guarded", model=model).read_text()
    assert f"chosen by the guard&#x27;s {report.guard_score} score" in text
    assert "lowest held-out loss" not in text
    scores = ", ".join(f"{v:.2f}" for v in report.guard_scores)
    assert f"epochs {scores}" in text and "exposure ratio (fitted)" in text
    unguarded = adapt(
        model, video, spec="estrnn", config={**TINY, "guard": {"enabled": False}}, progress=False
    )
    assert not unguarded.report.guard_scores
    text = write_report(unguarded, video, tmp_path / "plain").read_text()
    assert "lowest held-out loss" in text and "guard" not in text.split("Configuration")[0]
    from ttblur.report.page import summary_rows

    kept_unadapted = report.model_copy(update={"best_epoch": 0, "reverted": True})
    held_out = dict(summary_rows(kept_unadapted))["held-out loss"]
    assert held_out.endswith(f"kept {report.baseline_val_loss:.4g}")  # not "kept n/a"
