"""The shared SVG charts keep the promises of engine/reports/charts.py: honest percent scales, round ticks,
severity colours for aging, no red for expected cash, readable labels."""

from __future__ import annotations

import re

from engine.reports.charts import SERIES_COLOURS, bar_chart, line_chart, nice_ticks, severity_colours

REDS = {"#dc2626", "#ef4444", "#991b1b", "#5b1010"}


def bars(svg: str) -> list[tuple[float, float, str]]:
    """(y, height, fill) of every bar."""
    return [
        (float(y), float(h), fill)
        for y, h, fill in re.findall(
            r'<rect x="[\d.]+" y="([\d.]+)" width="[\d.]+" height="([\d.]+)" fill="(#\w+)"', svg
        )
    ]


def tick_labels(svg: str) -> list[str]:
    return re.findall(r'<text class="tick"[^>]*>([^<]*)</text>', svg)


def test_ticks_are_round_even_steps_ending_at_or_above_the_top() -> None:
    assert nice_ticks(733_668) == [0, 200_000, 400_000, 600_000, 800_000]
    assert nice_ticks(100) == [0, 20, 40, 60, 80, 100]
    for top in (3.7, 42, 999, 1001, 12_345_678):
        ticks = nice_ticks(top)
        steps = {round(b - a, 6) for a, b in zip(ticks, ticks[1:], strict=False)}
        assert len(steps) == 1 and ticks[0] == 0 and ticks[-1] >= top
        mantissa = f"{steps.pop():e}".split("e")[0]
        assert float(mantissa) in (1.0, 2.0, 5.0)


def test_a_small_rate_is_a_short_bar_on_a_0_to_100_percent_axis() -> None:
    svg = bar_chart(["a", "b"], {"rate": [0.04, 0.5]}, percent=True)
    assert tick_labels(svg) == ["0%", "25%", "50%", "75%", "100%"]
    (y4, h4, _), (y50, h50, _) = bars(svg)
    assert abs(h50 / h4 - 12.5) < 0.2  # proportional to the value, not stretched to the largest one


def test_amount_axis_ends_on_a_round_tick_with_compact_labels() -> None:
    svg = bar_chart(["x", "y"], {"open": [183_417, 733_668]})
    assert tick_labels(svg) == ["0", "200k", "400k", "600k", "800k"]


def test_aging_buckets_run_from_green_to_deep_red() -> None:
    colours = severity_colours(6)
    assert colours[0] == "#16a34a" and colours[-1] in REDS and len(set(colours)) == 6
    svg = bar_chart(
        ["current", "1-30", "31-60", "61-90", "91-180", "180+"], {"EUR": [1, 2, 3, 4, 5, 6]}, bar_colours=colours
    )
    assert [fill for _, _, fill in bars(svg)] == colours


def test_series_colours_hold_no_red() -> None:
    assert not REDS & set(SERIES_COLOURS)
    svg = bar_chart(["w1", "w2"], {"due": [1, 2], "promises": [1, 1], "plans": [0, 1], "overdue": [3, 1]}, stacked=True)
    assert not REDS & {fill for _, _, fill in bars(svg)}


def test_long_labels_are_shortened_and_turned_with_the_full_text_kept() -> None:
    names = [f"Customer with a very long name {i}" for i in range(12)]
    svg = bar_chart(names, {"open": list(range(12))})
    assert "rotate(-35" in svg and "<title>Customer with a very long name 3</title>" in svg
    assert "Customer with a…" in svg
    short = bar_chart(["a", "b"], {"open": [1, 2]})
    assert "rotate(" not in short


def test_a_line_chart_breaks_at_missing_months_and_keeps_cei_on_its_scale() -> None:
    svg = line_chart(["01", "02", "03", "04"], {"CEI": [80, None, 90, 95]}, top=100)
    assert svg.count("<polyline") == 1 and svg.count("<circle") == 3
    assert tick_labels(svg)[-1] == "100"
