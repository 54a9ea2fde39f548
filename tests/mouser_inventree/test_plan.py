"""Pure planning logic of the Mouser -> InvenTree job: table-driven, no I/O."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from stocksyncd.integrations.mouser_inventree.cursor import cursor_after, rotation, select
from stocksyncd.integrations.mouser_inventree.diff import (
    Break,
    FieldChange,
    MouserFields,
    StoredBreak,
    SupplierFields,
    fit_link,
    format_breaks,
    plan_fields,
    plan_price_breaks,
)
from stocksyncd.integrations.mouser_inventree.exclusion import (
    PartInfo,
    exclusion_reason,
    flag_set,
    metadata_excludes,
)
from stocksyncd.integrations.mouser_inventree.hits import (
    check_creatable,
    hits_message,
    is_na,
    make_hit,
    mark_created,
    plain_text,
    search_url,
    summarise_hits,
)
from stocksyncd.integrations.mouser_inventree.note import (
    NOTE_MAX,
    compose,
    plan_note,
    read_status,
    split_note,
)

D = Decimal

# -- cursor -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pks", "cursor", "n", "expected"),
    [
        ([], None, 1, []),
        ([], 5, 3, []),
        ([3, 7, 9], None, 1, [3]),
        ([3, 7, 9], 3, 1, [3]),
        ([3, 7, 9], 4, 1, [7]),
        ([3, 7, 9], 9, 2, [9, 3]),
        ([3, 7, 9], 10, 1, [3]),  # past the end wraps
        ([3, 7, 9], 0, 5, [3, 7, 9]),  # never more than the catalogue
        ([9, 3, 7, 7], 8, 3, [9, 3, 7]),  # unsorted input, duplicates
        ([5], 5, 1, [5]),
        ([5], 6, 2, [5]),
        ([3, 7, 9], 4, 0, []),
    ],
)
def test_select(pks: list[int], cursor: int | None, n: int, expected: list[int]) -> None:
    assert select(pks, cursor, n) == expected


def test_rotation_visits_every_part_once() -> None:
    assert rotation([1, 2, 3, 4], 3) == [3, 4, 1, 2]


@pytest.mark.parametrize(
    ("pks", "pk", "expected"),
    [
        ([], 4, None),
        ([3, 7, 9], 3, 7),
        ([3, 7, 9], 7, 9),
        ([3, 7, 9], 9, 3),  # wraps
        ([3, 7, 9], 5, 7),  # a part deleted meanwhile
        ([3, 7, 9], 100, 3),
        ([5], 5, 5),
    ],
)
def test_cursor_after(pks: list[int], pk: int, expected: int | None) -> None:
    assert cursor_after(pks, pk) == expected


def test_walking_with_cursor_after_visits_all_and_wraps() -> None:
    pks = [2, 4, 8]
    cursor: int | None = None
    seen = []
    for _ in range(5):
        (pk,) = select(pks, cursor, 1)
        seen.append(pk)
        cursor = cursor_after(pks, pk)
    assert seen == [2, 4, 8, 2, 4]


# -- exclusion -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True), ("True", True), ("true", True), ("TRUE", True), (1, True), ("1", True),
        (" yes ", True), (False, False), ("False", False), ("false", False), (0, False),
        (2, False), (None, False), ("", False), ("no", False), ([], False), ({}, False),
        (1.0, False),
    ],
)
def test_flag_set(value: Any, expected: bool) -> None:
    assert flag_set(value) is expected


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        (None, False),
        ({}, False),
        ("garbage", False),
        ([{"supplier_sync": {"exclude": True}}], False),
        ({"supplier_sync": {"exclude": "True"}}, True),
        ({"supplier_sync": {"exclude": "true"}}, True),
        ({"supplier_sync": {"exclude": True}}, True),
        ({"supplier_sync": {"exclude": 1}}, True),
        ({"supplier_sync": {"exclude": "False"}}, False),
        ({"supplier_sync": {"exclude": None}}, False),
        ({"supplier_sync": "exclude"}, False),
        ({"supplier_sync": {}}, False),
        ({"SupplierSyncPlugin": {"SyncIgnore": True}}, True),
        ({"SupplierSyncPlugin": {"SyncIgnore": False}}, False),
        ({"other": {"exclude": True}}, False),
    ],
)
def test_metadata_excludes(metadata: Any, expected: bool) -> None:
    assert metadata_excludes(metadata) is expected


EXCL = {"supplier_sync": {"exclude": "True"}}


@pytest.mark.parametrize(
    ("part", "part_meta", "cat_metas", "expected"),
    [
        (PartInfo(1, "A"), None, [], None),
        (PartInfo(1, "A", active=False), None, [], "inactive"),
        (PartInfo(1, "A", purchaseable=False), None, [], "not_purchasable"),
        (PartInfo(1, "A", active=False, purchaseable=False), EXCL, [EXCL], "inactive"),
        (PartInfo(1, "A"), EXCL, [], "excluded_part"),
        (PartInfo(1, "A"), EXCL, [EXCL], "excluded_part"),
        (PartInfo(1, "A", category=4), None, [EXCL], "excluded_category"),
        (PartInfo(1, "A", category=4), {}, [None, {}, EXCL], "excluded_category"),  # ancestor
        (PartInfo(1, "A", category=4), {}, [None, {"supplier_sync": {"exclude": "no"}}], None),
    ],
)
def test_exclusion_reason(
    part: PartInfo, part_meta: Any, cat_metas: list[Any], expected: str | None
) -> None:
    assert exclusion_reason(part, part_meta, cat_metas) == expected


# -- lifecycle note --------------------------------------------------------------


@pytest.mark.parametrize(
    ("note", "status", "user"),
    [
        (None, None, ""),
        ("", None, ""),
        ("my own words", None, "my own words"),
        ("[Mouser: Obsolete]", "Obsolete", ""),
        ("keep 2 reels [Mouser: End of Life]", "End of Life", "keep 2 reels"),
        ("a [Mouser: Obsolete] b", "Obsolete", "a b"),
        ("[Mouser:Obsolete]", "Obsolete", ""),
        ("[Mouser: New Product] x [Mouser: Obsolete]", "Obsolete", "x"),  # last one counts
        ("End of Life", "End of Life", ""),  # the original plugin wrote the bare status
        (" obsolete ", "obsolete", ""),
        ("Obsolete stock in drawer 3", None, "Obsolete stock in drawer 3"),
        ("[Mouser: ]", None, ""),
        ("Active", None, ""),  # an ordinary part, as other tools write it
    ],
)
def test_split_note(note: str | None, status: str | None, user: str) -> None:
    assert split_note(note) == (status, user)
    assert read_status(note) == status


@pytest.mark.parametrize(
    ("note", "status", "changed", "old_status", "new_note"),
    [
        (None, None, False, None, None),
        ("", "", False, None, ""),
        ("mine", None, False, None, "mine"),
        ("mine", "  ", False, None, "mine"),
        (None, "Obsolete", True, None, "[Mouser: Obsolete]"),
        ("", "End of Life", True, None, "[Mouser: End of Life]"),
        ("mine", "End of Life", True, None, "mine [Mouser: End of Life]"),
        ("mine [Mouser: New Product]", "End of Life", True, "New Product",
         "mine [Mouser: End of Life]"),
        ("mine [Mouser: New Product]", "New Product", False, "New Product",
         "mine [Mouser: New Product]"),
        ("a [Mouser: New Product] b", "New Product", False, "New Product",
         "a [Mouser: New Product] b"),  # the user's layout is kept when nothing changed
        ("mine [Mouser: Obsolete]", None, True, "Obsolete", "mine"),
        ("[Mouser: Obsolete]", None, True, "Obsolete", ""),
        ("Obsolete", "Obsolete", False, "Obsolete", "Obsolete"),
        ("Obsolete", "End of Life", True, "Obsolete", "[Mouser: End of Life]"),
        ("x", "Weird [odd]\nstatus", True, None, "x [Mouser: Weird (odd) status]"),
        ("Active", None, False, None, "Active"),  # still ordinary: left as it is
        ("Active", "Obsolete", True, None, "[Mouser: Obsolete]"),
    ],
)
def test_plan_note(
    note: str | None, status: str | None, changed: bool, old_status: str | None,
    new_note: str | None,
) -> None:
    plan = plan_note(note, status)
    assert plan.changed is changed
    assert plan.old_status == old_status
    assert plan.note == new_note
    assert plan.old_note == note


def test_plan_note_is_stable_after_writing() -> None:
    first = plan_note("user text", "Obsolete")
    again = plan_note(first.note, "Obsolete")
    assert not again.changed and again.note == first.note


def test_long_user_text_is_shortened_to_fit() -> None:
    user = "x" * 95
    plan = plan_note(user, "Not Recommended for New Designs")
    assert plan.note is not None
    assert len(plan.note) <= NOTE_MAX
    assert plan.note.endswith(" [Mouser: Not Recommended for New Designs]")
    assert plan.note.startswith("xxx") and "…" in plan.note
    assert read_status(plan.note) == "Not Recommended for New Designs"
    assert not plan_note(plan.note, "Not Recommended for New Designs").changed


def test_an_absurdly_long_status_still_fits() -> None:
    note = compose("user", "S" * 300)
    assert len(note) <= NOTE_MAX
    assert read_status(note) is not None


def test_user_text_fitting_exactly_is_kept() -> None:
    mark = "[Mouser: Obsolete]"
    user = "u" * (NOTE_MAX - len(mark) - 1)
    assert compose(user, "Obsolete") == f"{user} {mark}"


# -- price breaks -------------------------------------------------------------------


def sb(pk: int, q: str, p: str | None, c: str | None = "USD") -> StoredBreak:
    return StoredBreak(pk, D(q), D(p) if p is not None else None, c)


def mb(q: str, p: str, c: str = "USD") -> Break:
    return Break(D(q), D(p), c)


@pytest.mark.parametrize(
    ("current", "target", "changed"),
    [
        ([], [], False),
        ([sb(1, "1", "0.54")], [], False),  # Mouser sent none: keep what is there
        ([], [mb("1", "0.54")], True),
        ([sb(1, "1", "0.54")], [mb("1", "0.54")], False),
        ([sb(1, "1.0", "0.540")], [mb("1", "0.54")], False),  # Decimal equality
        ([sb(1, "1", "0.54", "usd")], [mb("1", "0.54", "USD")], False),
        ([sb(1, "1", "0.54")], [mb("1", "0.55")], True),
        ([sb(1, "1", "0.54")], [mb("1", "0.54", "EUR")], True),
        ([sb(1, "1", "0.54")], [mb("2", "0.54")], True),
        ([sb(1, "1", "0.54")], [mb("1", "0.54"), mb("10", "0.39")], True),
        ([sb(1, "1", "0.54"), sb(2, "10", "0.39")], [mb("1", "0.54")], True),
        ([sb(1, "10", "0.39"), sb(2, "1", "0.54")], [mb("1", "0.54"), mb("10", "0.39")], False),
        ([sb(1, "1", None)], [mb("1", "0.54")], True),  # InvenTree price is nullable
        ([sb(1, "1", "0.54", None)], [mb("1", "0.54")], True),
        ([sb(1, "1", "0.54")], [mb("1", "0.54"), mb("1", "0.60")], False),  # dup quantity
    ],
)
def test_plan_price_breaks(
    current: list[StoredBreak], target: list[Break], changed: bool
) -> None:
    plan = plan_price_breaks(current, target)
    assert (plan is not None) is changed


def test_price_plan_creates_rewrites_then_deletes() -> None:
    current = [sb(11, "1", "0.60"), sb(12, "10", "0.45"), sb(13, "1000", "0.20")]
    target = [mb("100", "0.27"), mb("1", "0.54"), mb("10", "0.39"), mb("10", "9.99")]
    plan = plan_price_breaks(current, target)
    assert plan is not None
    assert plan.create == (mb("100", "0.27"),)
    assert plan.update == ((current[0], mb("1", "0.54")), (current[1], mb("10", "0.39")))
    assert plan.delete == (current[2],)
    assert plan.old == "1 @ 0.6 USD; 10 @ 0.45 USD; 1000 @ 0.2 USD"
    assert plan.new == "1 @ 0.54 USD; 10 @ 0.39 USD; 100 @ 0.27 USD"


def test_price_plan_keeps_rows_that_already_match() -> None:
    current = [sb(11, "1", "0.54"), sb(12, "10", "0.45")]
    plan = plan_price_breaks(current, [mb("1", "0.540"), mb("10", "0.39", "EUR")])
    assert plan is not None
    assert plan.create == () and plan.delete == ()
    assert plan.update == ((current[1], mb("10", "0.39", "EUR")),)
    assert plan.currencies == {"EUR"}


def test_price_plan_drops_nonsense_breaks() -> None:
    plan = plan_price_breaks([], [mb("0", "1"), mb("5", "-1"), mb("5", "0.1", " eur ")])
    assert plan is not None
    assert plan.create == (mb("5", "0.1", "EUR"),)


def test_format_breaks_without_exponents() -> None:
    assert format_breaks([mb("1E+3", "1.50"), sb(1, "1", None, None)]) == (
        "1 @ ? ?; 1000 @ 1.5 USD"
    )


# -- availability, packaging, link ---------------------------------------------------------

URL_QS = "https://www.mouser.com/ProductDetail/TI/NE555P?qs=abc"


@pytest.mark.parametrize(
    ("current", "mouser", "expected"),
    [
        (SupplierFields(), MouserFields(), []),
        (SupplierFields(D(5), "Tube", URL_QS), MouserFields(None, None, None), []),
        (SupplierFields(D(5), "Tube", URL_QS), MouserFields(5, "Tube", URL_QS), []),
        (SupplierFields(D("5.0"), "Tube", URL_QS), MouserFields(5, " Tube ", URL_QS), []),
        (
            SupplierFields(None, None, None),
            MouserFields(0, "Reel", URL_QS),
            [
                FieldChange("availability", "available", None, "0", 0),
                FieldChange("packaging", "packaging", None, "Reel", "Reel"),
                FieldChange("link", "link", None, URL_QS, URL_QS),
            ],
        ),
        (
            SupplierFields(D(5), "Tube", "https://old"),
            MouserFields(1234, "Tube", URL_QS),
            [
                FieldChange("availability", "available", "5", "1234", 1234),
                FieldChange("link", "link", "https://old", URL_QS, URL_QS),
            ],
        ),
        (SupplierFields(D(5), "Tube", URL_QS), MouserFields(-1, "", "  "), []),
    ],
)
def test_plan_fields(
    current: SupplierFields, mouser: MouserFields, expected: list[FieldChange]
) -> None:
    assert plan_fields(current, mouser) == expected


def test_long_packaging_is_cut_to_inventree_limit() -> None:
    (change,) = plan_fields(SupplierFields(), MouserFields(packaging="Reel, " * 20))
    assert change.field == "packaging"
    assert len(change.value) == 50


def test_link_too_long_for_old_servers_loses_query() -> None:
    long = "https://www.mouser.com/ProductDetail/TI/NE555P?qs=" + "a" * 300
    assert fit_link(long, 200) == "https://www.mouser.com/ProductDetail/TI/NE555P"
    assert fit_link("https://x/" + "a" * 300, 200) is None
    assert fit_link(URL_QS, 200) == URL_QS
    stored = SupplierFields(link="https://www.mouser.com/ProductDetail/TI/NE555P")
    assert plan_fields(stored, MouserFields(link=long), link_max=200) == []


# -- hits ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pn", "expected"),
    [("N/A", True), ("n/a", True), (" N/A ", True), ("", True), (None, True),
     ("595-NE555P", False), ("NA-123", False)],
)
def test_is_na(pn: str | None, expected: bool) -> None:
    assert is_na(pn) is expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(None, ""), ("", ""), ("Timer <b>555</b>", "Timer 555"),
     ("R &amp; C&nbsp;kit", "R & C kit"), ("a\n  b", "a b")],
)
def test_plain_text(raw: str | None, expected: str) -> None:
    assert plain_text(raw) == expected


def hit(pn: str | None, mpn: str, *, na: bool = False) -> Any:
    return make_hit(mouser_pn=pn, manufacturer="TI", mpn=mpn, description="<i>Timer</i>",
                    availability="5 In Stock", link="https://m/" + mpn, na=na)


def test_summarise_hits_orders_and_flags() -> None:
    hits = [hit("N/A", "NE555"), hit("595-NE555PW", "NE555PW"), hit("595-NE555P", "NE555P"),
            hit(None, "NE555X"), hit("595-NE555Q", "NE555Q", na=True)]
    summary = summarise_hits("ne555p", hits, 348, "https://www.mouser.com/c/?q={query}")
    assert [h["mouser_pn"] for h in summary["hits"]] == [
        "595-NE555P", "595-NE555PW", "N/A", "N/A", "595-NE555Q",
    ]
    assert [h["na"] for h in summary["hits"]] == [False, False, True, True, True]
    assert summary["count"] == 348
    assert summary["shown"] == 5
    assert summary["creatable"] == 2
    assert summary["na"] == 3
    assert summary["search_link"] == "https://www.mouser.com/c/?q=ne555p"
    first = summary["hits"][0]
    assert first == {
        "mouser_pn": "595-NE555P", "na": False, "manufacturer": "TI", "mpn": "NE555P",
        "description": "Timer", "availability": "5 In Stock", "link": "https://m/NE555P",
    }
    assert hits_message(summary) == "348 Mouser hits for 'ne555p' (3 N/A), 5 shown"


@pytest.mark.parametrize(
    ("hits", "total", "message"),
    [
        ([], 0, "no Mouser hits for 'X1'"),
        ([], None, "no Mouser hits for 'X1'"),
        ([hit("1-X1", "X1")], 1, "1 Mouser hit for 'X1'"),
        ([hit("1-X1", "X1")], 0, "1 Mouser hit for 'X1'"),  # total lower than shown
        ([hit("N/A", "X1"), hit("1-X1", "X1")], 2, "2 Mouser hits for 'X1' (1 N/A)"),
    ],
)
def test_hits_message(hits: list[Any], total: int | None, message: str) -> None:
    assert hits_message(summarise_hits("X1", hits, total, "{query}")) == message


def test_search_url_quotes_the_name() -> None:
    assert search_url("https://www.mouser.de/c/?q={query}", "R 1k/5%") == (
        "https://www.mouser.de/c/?q=R%201k%2F5%25"
    )


DATA = summarise_hits("X1", [hit("1-X1", "X1"), hit("N/A", "X1")], 2, "{query}")


@pytest.mark.parametrize(
    ("kind", "data", "index", "error"),
    [
        ("hits", DATA, 0, None),
        ("hits", DATA, 1, "N/A"),
        ("hits", DATA, 2, "does not exist"),
        ("hits", DATA, -1, "does not exist"),
        ("lifecycle", DATA, 0, "not search hits"),
        ("hits", {}, 0, "does not exist"),
        ("hits", {"hits": ["junk"]}, 0, "malformed"),
        ("hits", {**DATA, "created": {"supplier_part": 42, "sku": "1-X1"}}, 0,
         "supplier part 42 (SKU 1-X1) was already created"),
        ("hits", {"hits": [{"mouser_pn": "1-X1", "na": False, "created": "supplier part 7"}]},
         0, "already created"),
    ],
)
def test_check_creatable(kind: str, data: dict[str, Any], index: int, error: str | None) -> None:
    if error is None:
        assert check_creatable(kind, data, index)["mouser_pn"] == "1-X1"
    else:
        with pytest.raises(ValueError, match=error.replace("(", r"\(").replace(")", r"\)")):
            check_creatable(kind, data, index)


def test_mark_created_records_the_hit_and_blocks_a_second_click() -> None:
    data = mark_created(DATA, 0, 42, "1-X1")
    assert data["hits"][0]["created"] == "supplier part 42"
    assert "created" not in DATA["hits"][0]  # the original is untouched
    assert data["created"] == {"supplier_part": 42, "sku": "1-X1", "hit": 0}
    with pytest.raises(ValueError, match="already created"):
        check_creatable("hits", data, 0)


@pytest.mark.parametrize(
    ("note", "status", "expected"),
    [("keep 2 reels", "Obsolete", "Obsolete"),
     ("keep 2 reels [Mouser: End of Life]", "Obsolete", "Obsolete"),
     ("Obsolete", None, ""),
     ("End of Life", "Obsolete", "Obsolete")],
)
def test_bare_note_is_the_status_alone(note: str, status: str | None, expected: str) -> None:
    plan = plan_note(note, status, note_format="bare")
    assert plan.changed and plan.note == expected


def test_bare_note_unchanged_when_the_status_is() -> None:
    assert not plan_note("Obsolete", "Obsolete", note_format="bare").changed
