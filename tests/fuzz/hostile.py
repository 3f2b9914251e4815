"""Strategies shared by the fuzz tests: hostile text as attackers and broken exports produce it."""

from __future__ import annotations

from hypothesis import strategies as st

#: Fragments that mean something to one of our parsers or to a reader downstream.
NASTY = [
    "{{ 7*7 }}", "{% for x in range(10) %}x{% endfor %}", "{{ ''.__class__.__mro__ }}", "{#", "{%", "}}",
    "\r\n", "\n", "\r", "\t", "\x00", "\x0b", "\u2028", "\u202e", "\ufeff", "\ud800", "=cmd|' /C calc'!A0",
    "=HYPERLINK(\"http://x\")", "+1", "-1", "@SUM(1)", "'", '"', "\\", ",", ";", "<script>alert(1)</script>",
    "&amp;", "${HOME}", "$(id)", "`id`", "../../etc/passwd", "NaN", "Infinity", "-0", "1e999999",
    "9" * 5000, "١٢٣", "١٢٣.٤٥", "０１２", "INV/1", "发票1", "Bcc: x@y.example", "null", "~", "!!python/object",
    "*alias", "&anchor", "- item", "key: value", "#", "---", "...", "%YAML 1.1",
]

nasty_text = st.one_of(
    st.sampled_from(NASTY),
    st.text(max_size=30),
    st.lists(st.one_of(st.sampled_from(NASTY), st.text(max_size=8)), min_size=1, max_size=4).map("".join),
)
