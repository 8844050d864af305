"""The report chart: a real PNG of the right size, not blank, with Chinese labels drawn as glyphs.

The tofu check has two halves so it can fail: matplotlib warns "Glyph ... missing from font(s)"
when a character falls back to an empty box, and pytest turns warnings into errors, so drawing the
Chinese chart at all proves no label was boxed; and the same characters drawn in DejaVu Sans
alone (a font known to lack them) do warn and come out as identical boxes, while ours differ.
"""

from __future__ import annotations

import io
import struct
import warnings
from datetime import UTC, datetime
from decimal import Decimal

import numpy as np
import pytest

from adapters.common.charts import FAMILIES, LATIN_FAMILY, report_png
from lifecycle.domain.pipeline import Pipeline, load_preset
from lifecycle.domain.views import Report, StageFigures


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])  # the IHDR chunk comes first
    return width, height


def pixels(data: bytes) -> np.ndarray:
    from matplotlib.image import imread

    return np.asarray(imread(io.BytesIO(data), format="png"))[..., :3]


def sample(p: Pipeline, *, bottleneck: str | None = "P1") -> Report:
    figs = []
    entries = 400
    for i, st in enumerate(p.stages):
        figs.append(
            StageFigures(
                stage=st.key,
                entries=entries,
                converted=entries // 2,
                conversion=None if st.terminal else 0.5,
                avg_days=3.0 + i,
                median_days=2.0 + (9 if st.key == bottleneck else i % 3),
                in_stage_now=entries // 4,
            )
        )
        entries = entries * 3 // 4
    return Report(
        since=None,
        until=None,
        team=None,
        owner=None,
        segment=None,
        stages=tuple(figs),
        bottleneck=bottleneck,
        forecast=(),
        weighted_total=Decimal("125000"),
        sql_p0_amount=Decimal("80000"),
        renewals_next_quarter=3,
        renewals_next_quarter_amount=Decimal("30000"),
        generated_at=datetime(2026, 11, 27, 8, 0, tzinfo=UTC),
    )


@pytest.fixture(scope="module")
def default() -> Pipeline:
    return load_preset("default")


@pytest.mark.slow  # renders charts: ~2.7 s each
@pytest.mark.parametrize("lang", ["en", "zh"])
def test_the_chart_is_a_png_of_the_stated_size_and_not_blank(default: Pipeline, lang: str) -> None:
    data = report_png(sample(default), default, lang)  # type: ignore[arg-type]
    assert png_size(data) == (1210, 682)
    img = pixels(data)
    ink = (img < 0.95).any(axis=2).mean()
    assert 0.05 < ink < 0.6, f"{ink:.1%} of the picture is drawn on"
    assert len(np.unique((img * 255).astype(np.uint8).reshape(-1, 3), axis=0)) > 20  # bars, text, antialiasing


def test_the_bottleneck_is_drawn_in_red_and_only_when_there_is_one(default: Pipeline) -> None:
    def red_pixels(r: Report) -> int:
        img = (pixels(report_png(r, default, "en")) * 255).astype(int)
        return int(
            ((abs(img[..., 0] - 0xD9) < 3) & (abs(img[..., 1] - 0x53) < 3) & (abs(img[..., 2] - 0x4F) < 3)).sum()
        )

    assert red_pixels(sample(default, bottleneck="P1")) > 500
    assert red_pixels(sample(default, bottleneck=None)) == 0


def test_chinese_labels_render_as_glyphs_not_boxes(default: Pipeline) -> None:
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        zh = report_png(sample(default), default, "zh")
    assert not [w for w in seen if "missing from font" in str(w.message)]
    assert not np.array_equal(pixels(zh), pixels(report_png(sample(default), default, "en")))


def draw(text: str, families: list[str]) -> np.ndarray:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(0.6, 0.6), dpi=100)
    fig.text(0.5, 0.5, text, fontfamily=families, fontsize=28, ha="center", va="center")
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return pixels(buf.getvalue())


def test_the_tofu_check_can_fail_with_a_font_that_lacks_the_glyphs(default: Pipeline) -> None:
    report_png(sample(default), default, "zh")  # registers the CJK font
    ours = draw("转", FAMILIES), draw("化", FAMILIES)
    assert not np.array_equal(*ours), "two different characters drew the same"
    assert (ours[0] < 0.5).any(), "nothing was drawn"
    with pytest.warns(UserWarning, match="missing from font"):
        boxes = draw("转", [LATIN_FAMILY]), draw("化", [LATIN_FAMILY])
    assert np.array_equal(*boxes), "DejaVu Sans has no CJK glyphs: both should be the same empty box"
