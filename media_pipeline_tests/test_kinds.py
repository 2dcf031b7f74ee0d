"""The StrEnums and the catalog's SQL spell the same values."""

from __future__ import annotations

import re
from pathlib import Path

from media_pipeline.catalog.lifecycle import RESTORED_STATUS
from media_pipeline.catalog.sql import PRESENT
from media_pipeline.kinds import MediaStatus, PurgeVersions, Visibility, sql_in
from media_pipeline.settings import Settings

CATALOG = Path(__file__).resolve().parent.parent / "media_pipeline" / "catalog"


def literals(column: str) -> set[str]:
    """Every quoted value the catalog's SQL compares ``column`` with or sets it to."""
    found: set[str] = set()
    for path in CATALOG.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        for match in re.finditer(rf"\b{column}\s*(?:=|<>|!=|(?:NOT\s+)?IN)\s*\(?((?:'\w+'"
                                 r"(?:,\s*)?)+)", text):
            found.update(re.findall(r"'(\w+)'", match.group(1)))
    return found


def test_every_status_in_the_catalog_sql_is_a_media_status() -> None:
    found = literals("status")
    assert {"missing", "purged", "pending"} <= found  # the scan is real
    assert found <= {s.value for s in MediaStatus}


def test_every_visibility_in_the_catalog_sql_is_a_visibility() -> None:
    assert literals("visibility") <= {v.value for v in Visibility}


def test_the_sql_constants_spell_the_enum_values() -> None:
    assert PRESENT == "status NOT IN ('missing', 'purged')"
    assert "'{" not in RESTORED_STATUS and "'active'" in RESTORED_STATUS
    assert sql_in(Visibility.PUBLIC, Visibility.INTERNAL) == "('public', 'internal')"


def test_members_compare_equal_to_the_strings_the_catalog_returns() -> None:
    assert MediaStatus("active") is MediaStatus.ACTIVE and MediaStatus.ACTIVE == "active"
    assert "deleted" in MediaStatus.servable() and "purged" in MediaStatus.gone()
    assert f"{Visibility.PRIVATE}" == "private"


def test_settings_accept_exactly_the_purge_modes() -> None:
    for mode in PurgeVersions:
        assert Settings.from_env({"MEDIA_PIPELINE_PURGE_VERSIONS": mode.value}).purge_versions \
            == mode
