"""Price sheets: what a kWh, a GPU-hour and a CPU-hour cost, and where each number came from.

The sheet is YAML at ``$LUMINARY_HOME/prices.yaml`` (``luminary cost init`` writes the example
for the user to edit). Without one, the example below is used and every report says so. A bad
sheet raises :class:`PriceSheetError` naming the file, the line and the field.

Values are frozen dataclasses, safe to share between threads. Parsing does no I/O;
:func:`load_prices` and :func:`write_example` are the only functions that touch files.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from luminary.errors import AlreadyExistsError, InvalidArgumentError, nearest

__all__ = [
    "EXAMPLE_YAML",
    "CloudOption",
    "OnPremises",
    "PriceSheet",
    "PriceSheetError",
    "default_prices_path",
    "load_prices",
    "parse_prices",
    "write_example",
]

EXAMPLE_YAML = """\
# Luminary price sheet, read by `luminary cost report`.
#
# EVERY NUMBER BELOW IS AN EXAMPLE, not a quote: a CERN-like on-premises site and two generic
# cloud offers. Replace them with your site's and your providers' figures. While this file is
# the untouched example, reports say "example prices".
#
# Units: money in `currency`; a GPU-hour is one GPU busy for an hour; a CPU-hour is one
# logical CPU (a cloud vCPU) busy for an hour.

currency: EUR

# On-premises site. Energy is bought separately: cost = kWh x PUE x price + hours x amortisation.
energy_price_per_kwh: 0.12   # example: an industrial electricity tariff
pue: 1.4                     # power usage effectiveness of the machine room (new ones: 1.1-1.2)
carbon_g_per_kwh: 50         # grid carbon intensity, g CO2e per kWh (EU average ~250, world ~480)

on_premises:                 # amortisation: purchase price over the hours of use in its life
  gpu_hour: 0.45             # example: a data-centre GPU and its share of the server
  cpu_hour: 0.01             # example: one core of a CPU server

# Cloud offers: the instance price includes energy. `pue` and `carbon_g_per_kwh` are optional
# (the site's values above are used when absent) and only feed the kWh and CO2e columns.
cloud:
  - name: cloud-on-demand    # example: a data-centre GPU rented by the hour
    gpu_hour: 3.00
    cpu_hour: 0.05
    pue: 1.15
    carbon_g_per_kwh: 350
  - name: cloud-spot         # example: the same, interruptible
    gpu_hour: 1.20
    cpu_hour: 0.02
    pue: 1.15
    carbon_g_per_kwh: 350
"""


class PriceSheetError(InvalidArgumentError):
    """A price sheet that does not parse or validate; ``line`` is 1-based (None: unknown)."""

    def __init__(self, path: str, line: int | None, field: str | None, problem: str) -> None:
        self.path = path
        self.line = line
        self.field = field
        where = f"{path} line {line}" if line is not None else path
        super().__init__(
            f"{where}: {problem}. Fix the file, or delete it to use the example prices "
            "(`luminary cost init` writes the example with comments)"
        )


@dataclass(frozen=True)
class OnPremises:
    gpu_hour: float  # amortisation per GPU-hour, in the sheet's currency
    cpu_hour: float  # amortisation per CPU-hour (one logical CPU)


@dataclass(frozen=True)
class CloudOption:
    name: str
    gpu_hour: float  # instance price per GPU-hour, energy included
    cpu_hour: float  # per vCPU-hour
    pue: float | None = None  # None: the sheet's
    carbon_g_per_kwh: float | None = None  # None: the sheet's


@dataclass(frozen=True)
class PriceSheet:
    """A parsed price sheet.

    ``path`` is the file it was read from, or where the user should write one when ``file``
    is False (the example defaults are in use). ``example`` is True for the defaults and for
    a file that is still the untouched example. ``lines`` maps field paths
    (``pue``, ``on_premises.gpu_hour``, ``cloud[1].pue``) to their 1-based line in the file.
    """

    currency: str
    energy_price_per_kwh: float
    pue: float
    carbon_g_per_kwh: float
    on_premises: OnPremises
    cloud: tuple[CloudOption, ...]
    path: Path
    file: bool
    example: bool
    lines: Mapping[str, int] = field(default_factory=dict)

    def origin(self, key: str) -> str:
        """Where the value of field ``key`` came from, for the report's assumptions."""
        if not self.file:
            return "example default"
        line = self.lines.get(key)
        where = f"{self.path.name} line {line}" if line is not None else self.path.name
        return f"{where} (example value)" if self.example else where

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "file": self.file,
            "example": self.example,
            "currency": self.currency,
            "energy_price_per_kwh": self.energy_price_per_kwh,
            "pue": self.pue,
            "carbon_g_per_kwh": self.carbon_g_per_kwh,
            "on_premises": {
                "gpu_hour": self.on_premises.gpu_hour,
                "cpu_hour": self.on_premises.cpu_hour,
            },
            "cloud": [
                {
                    "name": c.name,
                    "gpu_hour": c.gpu_hour,
                    "cpu_hour": c.cpu_hour,
                    "pue": c.pue,
                    "carbon_g_per_kwh": c.carbon_g_per_kwh,
                }
                for c in self.cloud
            ],
        }


# -- parsing (no I/O) -----------------------------------------------------------------------

# field -> (minimum, what it is); a minimum of None marks a text field
_TOP: dict[str, tuple[float | None, str]] = {
    "currency": (None, "the currency of every price, e.g. EUR"),
    "energy_price_per_kwh": (0.0, "the price of one kWh"),
    "pue": (1.0, "the machine room's power usage effectiveness"),
    "carbon_g_per_kwh": (0.0, "the grid's carbon intensity in g CO2e per kWh"),
    "on_premises": (None, "a mapping with gpu_hour and cpu_hour"),
    "cloud": (None, "a list of cloud offers (may be empty: [])"),
}
_ON_PREMISES: dict[str, tuple[float, str]] = {
    "gpu_hour": (0.0, "amortisation per GPU-hour"),
    "cpu_hour": (0.0, "amortisation per CPU-hour"),
}
_CLOUD_REQUIRED: dict[str, tuple[float | None, str]] = {
    "name": (None, "the offer's name"),
    "gpu_hour": (0.0, "the price per GPU-hour"),
    "cpu_hour": (0.0, "the price per vCPU-hour"),
}
_CLOUD_OPTIONAL: dict[str, tuple[float, str]] = {
    "pue": (1.0, "the provider's PUE"),
    "carbon_g_per_kwh": (0.0, "the region's carbon intensity"),
}


class _Parser:
    def __init__(self, path: str) -> None:
        self.path = path
        self.lines: dict[str, int] = {}

    def fail(self, node: Any, key: str | None, problem: str) -> PriceSheetError:
        line = node.start_mark.line + 1 if node is not None else None
        return PriceSheetError(self.path, line, key, problem)

    def mapping(
        self, node: Any, name: str, required: Mapping[str, Any], optional: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The key nodes and value nodes of a mapping, checked for missing, unknown and
        repeated keys."""
        import yaml

        label = f"{name} " if name else "the price sheet "
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, name or None, f"{label.strip()} must be a mapping of fields")
        found: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "?"
            full = f"{name}.{key}" if name else key
            if key not in required and key not in optional:
                hint = nearest(key, [*required, *optional], "field")
                raise self.fail(key_node, full, f"unknown field {key!r} in {label}; {hint}")
            if key in found:
                first = found[key][0].start_mark.line + 1
                raise self.fail(key_node, full, f"{full} is given twice (first on line {first})")
            found[key] = (key_node, value_node)
            self.lines[full] = key_node.start_mark.line + 1
        for key, (_minimum, what) in required.items():
            if key not in found:
                full = f"{name}.{key}" if name else key
                raise self.fail(node, full, f"{label}has no {key} ({what}); add it")
        return {k: v for k, (_, v) in found.items()}

    def number(self, node: Any, key: str, minimum: float) -> float:
        import yaml

        if not isinstance(node, yaml.ScalarNode):
            raise self.fail(node, key, f"{key} must be a number ≥ {minimum:g}, not a {_kind(node)}")
        try:
            value = yaml.constructor.SafeConstructor().construct_object(node)
        except yaml.YAMLError:
            value = None
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if not ok or not math.isfinite(value) or value < minimum:
            shown = node.value if node.value != "" else "empty"
            raise self.fail(node, key, f"{key} must be a number ≥ {minimum:g}, not {shown}")
        return float(value)

    def text(self, node: Any, key: str) -> str:
        import yaml

        if not isinstance(node, yaml.ScalarNode) or not node.value.strip():
            shown = node.value if isinstance(node, yaml.ScalarNode) else f"a {_kind(node)}"
            raise self.fail(node, key, f"{key} must be a non-empty text, not {shown or 'empty'}")
        return str(node.value).strip()


def _kind(node: Any) -> str:
    import yaml

    if isinstance(node, yaml.MappingNode):
        return "mapping"
    if isinstance(node, yaml.SequenceNode):
        return "list"
    return "value"


def parse_prices(text: str, path: str | Path = "prices.yaml") -> PriceSheet:
    """Parse and validate a price sheet's text; ``path`` names it in errors and origins."""
    import yaml

    where = str(path)
    parser = _Parser(where)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise PriceSheetError(where, line, None, f"not valid YAML: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise PriceSheetError(where, None, None, f"not valid YAML: {exc}") from None
    if root is None:
        raise PriceSheetError(where, None, None, "the file is empty")
    top = parser.mapping(root, "", _TOP, {})
    sheet: dict[str, Any] = {"currency": parser.text(top["currency"], "currency")}
    for key in ("energy_price_per_kwh", "pue", "carbon_g_per_kwh"):
        minimum = _TOP[key][0]
        assert minimum is not None
        sheet[key] = parser.number(top[key], key, minimum)
    onprem = parser.mapping(top["on_premises"], "on_premises", _ON_PREMISES, {})
    on_premises = OnPremises(
        **{k: parser.number(onprem[k], f"on_premises.{k}", m) for k, (m, _) in _ON_PREMISES.items()}
    )
    cloud_node = top["cloud"]
    if not isinstance(cloud_node, yaml.SequenceNode):
        if isinstance(cloud_node, yaml.ScalarNode) and cloud_node.tag.endswith(":null"):
            items: list[Any] = []
        else:
            raise parser.fail(cloud_node, "cloud", "cloud must be a list of offers (or [])")
    else:
        items = list(cloud_node.value)
    options = []
    names: set[str] = set()
    for i, item in enumerate(items):
        label = f"cloud[{i}]"
        fields = parser.mapping(item, label, _CLOUD_REQUIRED, _CLOUD_OPTIONAL)
        name = parser.text(fields["name"], f"{label}.name")
        if name in names:
            raise parser.fail(fields["name"], f"{label}.name", f"cloud offer {name!r} is repeated")
        names.add(name)
        optional = {
            k: parser.number(fields[k], f"{label}.{k}", m) if k in fields else None
            for k, (m, _) in _CLOUD_OPTIONAL.items()
        }
        options.append(
            CloudOption(
                name=name,
                gpu_hour=parser.number(fields["gpu_hour"], f"{label}.gpu_hour", 0.0),
                cpu_hour=parser.number(fields["cpu_hour"], f"{label}.cpu_hour", 0.0),
                pue=optional["pue"],
                carbon_g_per_kwh=optional["carbon_g_per_kwh"],
            )
        )
    return PriceSheet(
        currency=sheet["currency"],
        energy_price_per_kwh=sheet["energy_price_per_kwh"],
        pue=sheet["pue"],
        carbon_g_per_kwh=sheet["carbon_g_per_kwh"],
        on_premises=on_premises,
        cloud=tuple(options),
        path=Path(path),
        file=True,
        example=text == EXAMPLE_YAML,
        lines=dict(parser.lines),
    )


# -- files ----------------------------------------------------------------------------------


def default_prices_path() -> Path:
    """``$LUMINARY_HOME/prices.yaml``."""
    from luminary.config import Settings

    return Settings.from_env().home / "prices.yaml"


def load_prices(path: str | Path | None = None) -> PriceSheet:
    """The sheet at ``path`` (which must exist), else ``$LUMINARY_HOME/prices.yaml``, else the
    example defaults (``file=False``, ``example=True``, ``path`` where to write a sheet)."""
    if path is not None:
        target = Path(path).expanduser()
        if not target.is_file():
            msg = (
                f"price sheet {str(path)!r} does not exist; write the example there with "
                f"`luminary cost init --prices {path}` and edit it"
            )
            raise InvalidArgumentError(msg)
    else:
        target = default_prices_path()
        if not target.is_file():
            example = parse_prices(EXAMPLE_YAML, target)
            return dataclasses.replace(example, file=False, example=True, lines={})
    return parse_prices(target.read_text(encoding="utf-8"), target)


def write_example(path: str | Path | None = None, *, force: bool = False) -> Path:
    """Write :data:`EXAMPLE_YAML` to ``path`` (default ``$LUMINARY_HOME/prices.yaml``)."""
    target = Path(path).expanduser() if path is not None else default_prices_path()
    if target.exists() and not force:
        msg = f"{target} exists already; edit it, or pass --force to replace it with the example"
        raise AlreadyExistsError(msg)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(EXAMPLE_YAML, encoding="utf-8")
    tmp.replace(target)
    return target
