"""简体中文 texts of the pages, keyed by their English text (see engine/web/i18n.py)."""

from __future__ import annotations

ZH_CN: dict[str, str] = {
}
