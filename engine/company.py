"""The company as the customer reads it: its fields in the customer's language, and the letter's layout marker.

`company.languages: {zh: {name: 上海示例贸易有限公司, address: 上海市…}}` in the configuration gives a Chinese
letter the company's Chinese name and address; any field left out there keeps its plain value.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["DETAILS_MARKER", "company_for"]

#: The line of a letter template where the letter layout puts its invoices, charges, total and payment block.
DETAILS_MARKER = "[[details]]"


def company_for(company: Mapping[str, Any], language: str | None) -> dict[str, Any]:
    """The company fields in `language`: `company.languages.<zh>` then `<zh_CN>` override the plain fields."""
    merged = {k: v for k, v in company.items() if k != "languages"}
    by_language = company.get("languages") or {}
    if isinstance(by_language, Mapping) and language:
        tag = language.replace("-", "_")
        for key in dict.fromkeys((tag.split("_")[0].lower(), tag, tag.replace("_", "-"))):
            override = by_language.get(key)
            if isinstance(override, Mapping):
                merged.update(override)
    return merged
