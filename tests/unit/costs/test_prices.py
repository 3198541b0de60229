"""Price sheets: the example defaults, parsing, and errors that name the field and the line."""

from __future__ import annotations

from pathlib import Path

import pytest

from luminary.costs._prices import (
    EXAMPLE_YAML,
    PriceSheetError,
    load_prices,
    parse_prices,
    write_example,
)
from luminary.errors import AlreadyExistsError, InvalidArgumentError


def line_of(text: str, needle: str, occurrence: int = 0) -> int:
    """1-based line of the ``occurrence``-th line containing ``needle``."""
    hits = [i + 1 for i, line in enumerate(text.splitlines()) if needle in line]
    return hits[occurrence]


def with_value(key: str, value: str, occurrence: int = 0) -> tuple[str, int]:
    """The example with ``key: <value>`` on the ``occurrence``-th line that sets ``key``."""
    lines = EXAMPLE_YAML.splitlines()
    n = line_of(EXAMPLE_YAML, f"{key}:", occurrence)
    head, _, _ = lines[n - 1].partition(f"{key}:")
    lines[n - 1] = f"{head}{key}: {value}"
    return "\n".join(lines) + "\n", n


def test_the_example_parses_with_every_field() -> None:
    sheet = parse_prices(EXAMPLE_YAML, "prices.yaml")
    assert sheet.currency == "EUR"
    assert sheet.energy_price_per_kwh == 0.12
    assert sheet.pue == 1.4
    assert sheet.carbon_g_per_kwh == 50
    assert sheet.on_premises.gpu_hour == 0.45
    assert [c.name for c in sheet.cloud] == ["cloud-on-demand", "cloud-spot"]
    assert sheet.cloud[1].gpu_hour == 1.2
    assert sheet.example  # the untouched example is still labelled as one
    assert sheet.lines["pue"] == line_of(EXAMPLE_YAML, "pue: 1.4")
    assert "EXAMPLE" in EXAMPLE_YAML  # the file says so in its comments


def test_without_a_file_the_example_defaults_are_used_and_labelled(home: Path) -> None:
    sheet = load_prices()
    assert not sheet.file
    assert sheet.example
    assert sheet.path == home / "prices.yaml"
    assert sheet.origin("energy_price_per_kwh") == "example default"


def test_init_writes_the_example_once_and_the_user_edits_it(home: Path) -> None:
    path = write_example()
    assert path == home / "prices.yaml"
    assert path.read_text() == EXAMPLE_YAML
    written = load_prices()
    assert written.file
    assert written.example
    assert written.origin("pue").endswith("(example value)")
    with pytest.raises(AlreadyExistsError, match="--force"):
        write_example()
    path.write_text(EXAMPLE_YAML.replace("pue: 1.4 ", "pue: 1.1 "))
    edited = load_prices()
    assert edited.pue == 1.1
    assert not edited.example
    assert edited.origin("pue") == f"prices.yaml line {line_of(EXAMPLE_YAML, 'pue: 1.4')}"
    write_example(force=True)
    assert load_prices().pue == 1.4


def test_an_explicit_path_that_does_not_exist_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="luminary cost init --prices"):
        load_prices(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("key", "field", "occurrence", "minimum"),
    [
        ("energy_price_per_kwh", "energy_price_per_kwh", 0, "0"),
        ("carbon_g_per_kwh", "carbon_g_per_kwh", 0, "0"),
        ("pue", "pue", 0, "1"),
        ("gpu_hour", "on_premises.gpu_hour", 0, "0"),
        ("cpu_hour", "on_premises.cpu_hour", 0, "0"),
        ("gpu_hour", "cloud[0].gpu_hour", 1, "0"),
        ("cpu_hour", "cloud[1].cpu_hour", 2, "0"),
        ("pue", "cloud[1].pue", 2, "1"),
        ("carbon_g_per_kwh", "cloud[0].carbon_g_per_kwh", 1, "0"),
    ],
)
def test_a_negative_value_names_the_field_and_its_line(
    key: str, field: str, occurrence: int, minimum: str
) -> None:
    text, line = with_value(key, "-0.2", occurrence)
    with pytest.raises(PriceSheetError) as info:
        parse_prices(text, "prices.yaml")
    assert f"prices.yaml line {line}: {field} must be a number ≥ {minimum}, not -0.2" in str(
        info.value
    )
    assert (info.value.line, info.value.field) == (line, field)


@pytest.mark.parametrize("value", ["abc", "true", ".inf", "'0.2 EUR'", "[1, 2]", '""'])
def test_a_value_that_is_no_finite_number_is_refused(value: str) -> None:
    text, line = with_value("energy_price_per_kwh", value)
    with pytest.raises(PriceSheetError, match=rf"line {line}: energy_price_per_kwh must be"):
        parse_prices(text, "prices.yaml")


def test_a_pue_below_one_is_refused() -> None:
    text, line = with_value("pue", "0.9")
    with pytest.raises(PriceSheetError, match=rf"line {line}: pue must be a number ≥ 1, not 0.9"):
        parse_prices(text)


@pytest.mark.parametrize(
    ("key", "field", "occurrence"),
    [
        ("energy_price_per_kwh", "energy_price_per_kwh", 0),
        ("currency", "currency", 0),
        ("gpu_hour", "on_premises.gpu_hour", 0),
        ("cpu_hour", "cloud[1].cpu_hour", 2),
        ("name", "cloud[0].name", 0),
    ],
)
def test_a_missing_field_is_named_with_the_line_of_its_mapping(
    key: str, field: str, occurrence: int
) -> None:
    removed = line_of(EXAMPLE_YAML, f"{key}:", occurrence)
    lines = EXAMPLE_YAML.splitlines()
    if key == "name":  # the list item starts on this line: keep the dash, move the next key up
        lines[removed - 1] = "  - " + lines[removed].lstrip()
        del lines[removed]
    else:
        del lines[removed - 1]
    with pytest.raises(PriceSheetError) as info:
        parse_prices("\n".join(lines) + "\n", "prices.yaml")
    assert info.value.field == field
    assert info.value.line is not None  # where the mapping that lacks it starts
    assert f"prices.yaml line {info.value.line}: " in str(info.value)
    assert f"has no {key} (" in str(info.value)


def test_an_unknown_field_suggests_the_nearest() -> None:
    text = EXAMPLE_YAML.replace("energy_price_per_kwh:", "energy_price_per_kWh:")
    with pytest.raises(PriceSheetError, match="did you mean 'energy_price_per_kwh'"):
        parse_prices(text)


def test_a_field_given_twice_is_refused_with_both_lines() -> None:
    text = EXAMPLE_YAML + "pue: 1.2\n"
    first = line_of(EXAMPLE_YAML, "pue: 1.4")
    last = len(text.splitlines())
    with pytest.raises(PriceSheetError, match=rf"line {last}: pue is given twice .*line {first}"):
        parse_prices(text)


def test_yaml_syntax_errors_and_empty_files_are_clear() -> None:
    with pytest.raises(PriceSheetError, match=r"prices\.yaml line 2: not valid YAML"):
        parse_prices("currency: EUR\n  pue: 1.4\n", "prices.yaml")
    with pytest.raises(PriceSheetError, match="empty"):
        parse_prices("# nothing\n")
    with pytest.raises(PriceSheetError, match="must be a mapping"):
        parse_prices("- 1\n- 2\n")


def test_cloud_may_be_empty_and_its_optional_fields_absent() -> None:
    start = EXAMPLE_YAML.index("cloud:")
    base = EXAMPLE_YAML[:start]
    assert parse_prices(base + "cloud: []\n").cloud == ()
    sheet = parse_prices(base + "cloud:\n  - name: hpc-centre\n    gpu_hour: 1\n    cpu_hour: 0\n")
    (offer,) = sheet.cloud
    assert (offer.name, offer.pue, offer.carbon_g_per_kwh) == ("hpc-centre", None, None)
    with pytest.raises(PriceSheetError, match="repeated"):
        parse_prices(base + "cloud:\n" + "  - {name: a, gpu_hour: 1, cpu_hour: 1}\n" * 2)
