"""Overlapping tag assignments are refused when the site file is read, at both places in the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from evsite.site import SiteFileError, load_site
from tests.metering.helpers import EXAMPLE

U102 = "  - {id: U102, tags: [TAG-U102]}"


def with_u102(tmp_path: Path, line: str) -> Path:
    text = EXAMPLE.read_text(encoding="utf-8")
    assert U102 in text
    path = tmp_path / "site.yaml"
    path.write_text(text.replace(U102, line), encoding="utf-8")
    return path


def line_of(path: Path, needle: str) -> int:
    return next(i for i, text in enumerate(path.read_text().splitlines(), 1) if needle in text)


def test_a_tag_held_by_two_units_at_once_is_an_error_at_both_assignments(tmp_path: Path) -> None:
    path = with_u102(tmp_path, "  - {id: U102, tags: [TAG-U102, {tag: TAG-U101, since: 2026-10-10}]}")
    with pytest.raises(SiteFileError) as caught:
        load_site(path)
    text = str(caught.value)
    first, second = line_of(path, "{id: U101,"), line_of(path, "{id: U102,")
    # U101's plain "TAG-U101" (column 23) and U102's `tag: TAG-U101` value (column 34), each naming the other
    assert f"{path}:{first}:23: units[0].tags[0]: id tag 'TAG-U101' is held by unit 'U101' and by unit 'U102'" in text
    assert "(units[1].tags[1].tag) at the same time (from 2026-10-10)" in text
    assert f"{path}:{second}:34: units[1].tags[1].tag: id tag 'TAG-U101' is held by unit 'U102'" in text


def test_a_tag_handed_over_on_a_date_is_not_an_overlap(tmp_path: Path) -> None:
    # `until` is exclusive: U101 holds it through 2026-10-09, U102 from 2026-10-10.
    text = EXAMPLE.read_text(encoding="utf-8").replace(
        "  - {id: U101, tags: [TAG-U101]}", "  - {id: U101, tags: [{tag: TAG-U101, until: 2026-10-10}]}"
    )
    path = tmp_path / "handover.yaml"
    path.write_text(text.replace(U102, "  - {id: U102, tags: [TAG-U102, {tag: TAG-U101, since: 2026-10-10}]}"))
    site = load_site(path)
    assert site.tag_unit("TAG-U101", on=site.units[0].tags[0].until) == "U102"  # type: ignore[union-attr]


def test_overlapping_dated_holdings_are_reported_with_the_shared_days(tmp_path: Path) -> None:
    text = EXAMPLE.read_text(encoding="utf-8").replace(
        "  - {id: U101, tags: [TAG-U101]}", "  - {id: U101, tags: [{tag: TAG-U101, until: 2026-10-20}]}"
    )
    path = tmp_path / "overlap.yaml"
    path.write_text(text.replace(U102, "  - {id: U102, tags: [{tag: TAG-U101, since: 2026-10-10}]}"))
    with pytest.raises(SiteFileError, match=r"from 2026-10-10 until 2026-10-20"):
        load_site(path)
