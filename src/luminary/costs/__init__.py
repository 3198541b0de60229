"""Costs: what a selection of runs used and what it cost, along lineage.

- ``_prices.py`` — price sheets (``prices.yaml``): electricity, on-premises hardware amortised
  per GPU- and CPU-hour, cloud options to compare; validated with the line of each error.
- ``_report.py`` — selecting runs (a project, a time window, everything upstream of a model
  version or a dataset version, walking :mod:`luminary.lineage`), their measured and estimated
  energy, and the cost report (``luminary cost``, the web UI's energy page, the demo).

Energy itself is measured by :mod:`luminary.energy`; costs only reads what runs recorded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from luminary._lazy import lazy_getattr

if TYPE_CHECKING:
    from luminary.costs._prices import (
        EXAMPLE_YAML,
        CloudOption,
        OnPremises,
        PriceSheet,
        PriceSheetError,
        default_prices_path,
        load_prices,
        parse_prices,
        write_example,
    )
    from luminary.costs._report import (
        MEASURED_SOURCES,
        Assumption,
        CostReport,
        EnergyTotals,
        NestedRuns,
        OptionCost,
        RunUsage,
        Selection,
        ServingFigure,
        build_report,
        cost_report,
        exclusive,
        is_measured,
        parse_since,
        select_runs,
        serving_figure,
        usage_of,
    )

_LAZY = {
    "Assumption": "luminary.costs._report",
    "CloudOption": "luminary.costs._prices",
    "CostReport": "luminary.costs._report",
    "EXAMPLE_YAML": "luminary.costs._prices",
    "EnergyTotals": "luminary.costs._report",
    "MEASURED_SOURCES": "luminary.costs._report",
    "NestedRuns": "luminary.costs._report",
    "OnPremises": "luminary.costs._prices",
    "OptionCost": "luminary.costs._report",
    "PriceSheet": "luminary.costs._prices",
    "PriceSheetError": "luminary.costs._prices",
    "RunUsage": "luminary.costs._report",
    "Selection": "luminary.costs._report",
    "ServingFigure": "luminary.costs._report",
    "build_report": "luminary.costs._report",
    "cost_report": "luminary.costs._report",
    "default_prices_path": "luminary.costs._prices",
    "exclusive": "luminary.costs._report",
    "is_measured": "luminary.costs._report",
    "load_prices": "luminary.costs._prices",
    "parse_prices": "luminary.costs._prices",
    "parse_since": "luminary.costs._report",
    "select_runs": "luminary.costs._report",
    "serving_figure": "luminary.costs._report",
    "usage_of": "luminary.costs._report",
    "write_example": "luminary.costs._prices",
}

__all__ = [
    "Assumption",
    "CloudOption",
    "CostReport",
    "EXAMPLE_YAML",
    "EnergyTotals",
    "MEASURED_SOURCES",
    "NestedRuns",
    "OnPremises",
    "OptionCost",
    "PriceSheet",
    "PriceSheetError",
    "RunUsage",
    "Selection",
    "ServingFigure",
    "build_report",
    "cost_report",
    "default_prices_path",
    "exclusive",
    "is_measured",
    "load_prices",
    "parse_prices",
    "parse_since",
    "select_runs",
    "serving_figure",
    "usage_of",
    "write_example",
]

__getattr__ = lazy_getattr(_LAZY)
