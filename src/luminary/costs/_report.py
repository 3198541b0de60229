"""Cost accounting: GPU-hours, kWh, CO2e and money of a set of runs, on-premises vs cloud.

Runs that were measured carry ``energy/<device>_joules`` with the tag
``energy.<device>.source`` (``rapl``, ``nvml-counter``, ``nvml-power`` or ``estimate``) and
``resources/cpu_seconds`` / ``resources/gpu_seconds``. Figures from the estimator are kept apart
from measured ones all the way to the report, which marks them; runs without energy are listed
as not measured, never counted as zero silently.

The arithmetic (:func:`usage_of`, :func:`build_report`) does no I/O; :func:`select_runs` and
:func:`cost_report` read the store. Every value is a frozen dataclass.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from luminary.costs._prices import PriceSheet, load_prices
from luminary.errors import InvalidArgumentError

if TYPE_CHECKING:
    from luminary.store import Store
    from luminary.tracking import Run

__all__ = [
    "MEASURED_SOURCES",
    "Assumption",
    "CostReport",
    "EnergyTotals",
    "NestedRuns",
    "OptionCost",
    "RunUsage",
    "Selection",
    "ServingFigure",
    "build_report",
    "cost_report",
    "exclusive",
    "is_measured",
    "parse_since",
    "select_runs",
    "serving_figure",
    "usage_of",
]

JOULES_PER_KWH = 3.6e6
MEASURED_SOURCES = frozenset({"rapl", "nvml-counter", "nvml-power", "measured"})
PRODUCES_TAG = "produces"  # a run that wrote dataset versions: "jets@2,jets-val@2"

_DEVICE_METRIC = re.compile(r"^energy/(?P<device>.+)_joules$")


def is_measured(source: str) -> bool:
    """A meter read the figure (a counter or sampled power); anything else is an estimate."""
    return source in MEASURED_SOURCES


# -- per run --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunUsage:
    """What one run recorded. ``sources`` maps each device to its source label ("" when the
    run did not say, which counts as estimated); ``role`` says why a run was selected."""

    run_id: str
    name: str
    project: str
    parent_id: str | None
    start: datetime
    end: datetime | None
    joules: Mapping[str, float] = field(default_factory=dict)
    sources: Mapping[str, str] = field(default_factory=dict)
    details: Mapping[str, str] = field(default_factory=dict)
    cpu_seconds: float | None = None
    gpu_seconds: float | None = None
    role: str = ""

    @property
    def has_energy(self) -> bool:
        return bool(self.joules)

    @property
    def has_resources(self) -> bool:
        return self.cpu_seconds is not None or self.gpu_seconds is not None

    @property
    def measured_joules(self) -> float:
        return sum(j for d, j in self.joules.items() if is_measured(self.sources.get(d, "")))

    @property
    def estimated_joules(self) -> float:
        return sum(j for d, j in self.joules.items() if not is_measured(self.sources.get(d, "")))

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.run_id,
            "name": self.name,
            "project": self.project,
            "parent_id": self.parent_id,
            "role": self.role,
            "joules": dict(self.joules),
            "sources": dict(self.sources),
            "measured_joules": self.measured_joules,
            "estimated_joules": self.estimated_joules,
            "cpu_seconds": self.cpu_seconds,
            "gpu_seconds": self.gpu_seconds,
        }


def _finite(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def usage_of(run: Run, role: str = "") -> RunUsage:
    """The energy and hours a run recorded. Per-device metrics are used when present;
    ``energy/total_joules`` alone counts as measured only when the run says
    ``energy.measured=all``."""
    joules: dict[str, float] = {}
    for key, value in run.metrics.items():
        match = _DEVICE_METRIC.match(key)
        number = _finite(value)
        if match and match["device"] != "total" and number is not None:
            joules[match["device"]] = max(number, 0.0)
    sources = {d: run.tags.get(f"energy.{d}.source", "") for d in joules}
    details = {
        d: run.tags[f"energy.{d}.detail"] for d in joules if f"energy.{d}.detail" in run.tags
    }
    total = _finite(run.metrics.get("energy/total_joules"))
    if not joules and total is not None:
        joules = {"total": max(total, 0.0)}
        coverage = run.tags.get("energy.measured", "")
        sources = {"total": "measured" if coverage == "all" else coverage or ""}
    cpu = _finite(run.metrics.get("resources/cpu_seconds"))
    gpu = _finite(run.metrics.get("resources/gpu_seconds"))
    return RunUsage(
        run_id=run.id,
        name=run.name,
        project=run.project,
        parent_id=run.parent_id,
        start=run.start_time,
        end=run.end_time,
        joules=joules,
        sources=sources,
        details=details,
        cpu_seconds=None if cpu is None else max(cpu, 0.0),
        gpu_seconds=None if gpu is None else max(gpu, 0.0),
        role=role,
    )


@dataclass(frozen=True)
class NestedRuns:
    """A parent whose span contains its children's: its meters ran while they ran, so their
    joules and hours are taken out of the parent's to count them once."""

    parent_id: str
    child_ids: tuple[str, ...]
    joules: float
    cpu_seconds: float
    gpu_seconds: float


def _contains(parent: RunUsage, child: RunUsage) -> bool:
    if child.start < parent.start:
        return False
    if parent.end is None:
        return True
    return child.end is not None and child.end <= parent.end


def exclusive(usages: Sequence[RunUsage]) -> tuple[list[RunUsage], list[NestedRuns]]:
    """Each run's own share: a parent minus its selected children that ran inside its span
    (per device, and never below zero)."""
    children: dict[str, list[RunUsage]] = {}
    for u in usages:
        if u.parent_id is not None:
            children.setdefault(u.parent_id, []).append(u)
    result: list[RunUsage] = []
    notes: list[NestedRuns] = []
    for u in usages:
        inner = [c for c in children.get(u.run_id, []) if _contains(u, c)]
        if not inner or not (u.has_energy or u.has_resources):
            result.append(u)
            continue
        joules = {
            d: max(j - sum(c.joules.get(d, 0.0) for c in inner), 0.0) for d, j in u.joules.items()
        }

        def less(own: float | None, key: str, inner: list[RunUsage] = inner) -> float | None:
            if own is None:
                return None
            return max(own - sum(getattr(c, key) or 0.0 for c in inner), 0.0)

        cpu, gpu = less(u.cpu_seconds, "cpu_seconds"), less(u.gpu_seconds, "gpu_seconds")
        notes.append(
            NestedRuns(
                parent_id=u.run_id,
                child_ids=tuple(c.run_id for c in inner),
                joules=sum(u.joules.values()) - sum(joules.values()),
                cpu_seconds=(u.cpu_seconds or 0.0) - (cpu or 0.0),
                gpu_seconds=(u.gpu_seconds or 0.0) - (gpu or 0.0),
            )
        )
        result.append(replace(u, joules=joules, cpu_seconds=cpu, gpu_seconds=gpu))
    return result, notes


# -- the report -----------------------------------------------------------------------------


@dataclass(frozen=True)
class EnergyTotals:
    """Sums over the selected runs, each run counted once (see :class:`NestedRuns`)."""

    measured_joules: float
    estimated_joules: float
    by_source: Mapping[str, Mapping[str, float]]  # source -> device -> joules
    estimate_details: tuple[str, ...]  # the estimator's constants, as the runs recorded them
    cpu_hours: float
    gpu_hours: float

    @property
    def joules(self) -> float:
        return self.measured_joules + self.estimated_joules

    @property
    def all_estimated(self) -> bool:
        return self.estimated_joules > 0 and self.measured_joules == 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "measured_joules": self.measured_joules,
            "estimated_joules": self.estimated_joules,
            "joules": self.joules,
            "all_estimated": self.all_estimated,
            "by_source": {s: dict(d) for s, d in self.by_source.items()},
            "estimate_details": list(self.estimate_details),
            "cpu_hours": self.cpu_hours,
            "gpu_hours": self.gpu_hours,
        }


@dataclass(frozen=True)
class OptionCost:
    """One row: the selected work priced on-premises or at one cloud offer. kWh are at the
    wall (IT energy x PUE); a cloud price includes its energy, so ``energy_cost_*`` is 0."""

    name: str
    kind: Literal["on-premises", "cloud"]
    pue: float
    carbon_g_per_kwh: float
    gpu_hours: float
    cpu_hours: float
    kwh_measured: float
    kwh_estimated: float
    energy_cost_measured: float
    energy_cost_estimated: float
    gpu_cost: float
    cpu_cost: float

    @property
    def kwh(self) -> float:
        return self.kwh_measured + self.kwh_estimated

    @property
    def co2e_kg_measured(self) -> float:
        return self.kwh_measured * self.carbon_g_per_kwh / 1000

    @property
    def co2e_kg_estimated(self) -> float:
        return self.kwh_estimated * self.carbon_g_per_kwh / 1000

    @property
    def co2e_kg(self) -> float:
        return self.co2e_kg_measured + self.co2e_kg_estimated

    @property
    def cost(self) -> float:
        return (
            self.energy_cost_measured + self.energy_cost_estimated + self.gpu_cost + self.cpu_cost
        )

    @property
    def cost_estimated(self) -> bool:
        """Part of the cost comes from estimated energy."""
        return self.energy_cost_estimated > 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "pue": self.pue,
            "carbon_g_per_kwh": self.carbon_g_per_kwh,
            "gpu_hours": self.gpu_hours,
            "cpu_hours": self.cpu_hours,
            "kwh": {"measured": self.kwh_measured, "estimated": self.kwh_estimated},
            "co2e_kg": {"measured": self.co2e_kg_measured, "estimated": self.co2e_kg_estimated},
            "cost": {
                "energy_measured": self.energy_cost_measured,
                "energy_estimated": self.energy_cost_estimated,
                "gpu": self.gpu_cost,
                "cpu": self.cpu_cost,
                "total": self.cost,
                "includes_estimate": self.cost_estimated,
            },
        }


@dataclass(frozen=True)
class Assumption:
    what: str
    value: str
    origin: str

    def to_dict(self) -> dict[str, str]:
        return {"what": self.what, "value": self.value, "origin": self.origin}


@dataclass(frozen=True)
class ServingFigure:
    """J/event of a served model, from its latest serving run."""

    run_id: str
    model: str
    joules_per_event: float | None
    events_per_s: float | None
    measured: bool
    coverage: str  # the run's energy.measured tag ("" when it did not say)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "model": self.model,
            "joules_per_event": self.joules_per_event,
            "events_per_s": self.events_per_s,
            "measured": self.measured,
            "coverage": self.coverage,
        }


@dataclass(frozen=True)
class CostReport:
    selection: Mapping[str, str | None]  # project, since, model as asked
    prices: PriceSheet
    runs: tuple[RunUsage, ...]  # as recorded, in selection order
    nested: tuple[NestedRuns, ...]
    totals: EnergyTotals
    options: tuple[OptionCost, ...]
    assumptions: tuple[Assumption, ...]
    model: str | None = None  # the version the --model reference resolved to
    inputs: tuple[str, ...] = ()  # its dataset versions
    serving: ServingFigure | None = None

    @property
    def not_measured(self) -> tuple[RunUsage, ...]:
        return tuple(u for u in self.runs if not u.has_energy)

    @property
    def without_resources(self) -> tuple[RunUsage, ...]:
        return tuple(u for u in self.runs if not u.has_resources)

    def to_dict(self) -> dict[str, Any]:
        return {
            "selection": dict(self.selection),
            "model": self.model,
            "inputs": list(self.inputs),
            "prices": {
                "path": str(self.prices.path),
                "file": self.prices.file,
                "example": self.prices.example,
                "currency": self.prices.currency,
            },
            "runs": [u.to_dict() for u in self.runs],
            "run_count": len(self.runs),
            "not_measured": [u.run_id for u in self.not_measured],
            "without_resources": [u.run_id for u in self.without_resources],
            "nested": [
                {
                    "parent_id": n.parent_id,
                    "child_ids": list(n.child_ids),
                    "joules_subtracted": n.joules,
                    "cpu_seconds_subtracted": n.cpu_seconds,
                    "gpu_seconds_subtracted": n.gpu_seconds,
                }
                for n in self.nested
            ],
            "totals": self.totals.to_dict(),
            "options": [o.to_dict() for o in self.options],
            "serving": self.serving.to_dict() if self.serving else None,
            "assumptions": [a.to_dict() for a in self.assumptions],
        }


def _totals(usages: Iterable[RunUsage]) -> EnergyTotals:
    measured = estimated = cpu = gpu = 0.0
    by_source: dict[str, dict[str, float]] = {}
    details: list[str] = []
    for u in usages:
        for device, joules in u.joules.items():
            source = u.sources.get(device, "") or "not recorded"
            if is_measured(source):
                measured += joules
            else:
                estimated += joules
                detail = u.details.get(device)
                if detail and f"{device}: {detail}" not in details:
                    details.append(f"{device}: {detail}")
            per = by_source.setdefault(source, {})
            per[device] = per.get(device, 0.0) + joules
        cpu += u.cpu_seconds or 0.0
        gpu += u.gpu_seconds or 0.0
    return EnergyTotals(
        measured_joules=measured,
        estimated_joules=estimated,
        by_source=by_source,
        estimate_details=tuple(details),
        cpu_hours=cpu / 3600,
        gpu_hours=gpu / 3600,
    )


def _money(value: float, currency: str) -> str:
    text = f"{value:.2f}" if round(value, 2) == value else f"{value:g}"
    return f"{text} {currency}"


def build_report(
    runs: Sequence[RunUsage],
    prices: PriceSheet,
    *,
    selection: Mapping[str, str | None] | None = None,
    model: str | None = None,
    inputs: Sequence[str] = (),
    serving: ServingFigure | None = None,
) -> CostReport:
    """Price the selected runs at every option of the sheet (no I/O)."""
    own, nested = exclusive(runs)
    totals = _totals(own)
    it_kwh_measured = totals.measured_joules / JOULES_PER_KWH
    it_kwh_estimated = totals.estimated_joules / JOULES_PER_KWH
    cur = prices.currency
    options = [
        OptionCost(
            name="on-premises",
            kind="on-premises",
            pue=prices.pue,
            carbon_g_per_kwh=prices.carbon_g_per_kwh,
            gpu_hours=totals.gpu_hours,
            cpu_hours=totals.cpu_hours,
            kwh_measured=it_kwh_measured * prices.pue,
            kwh_estimated=it_kwh_estimated * prices.pue,
            energy_cost_measured=it_kwh_measured * prices.pue * prices.energy_price_per_kwh,
            energy_cost_estimated=it_kwh_estimated * prices.pue * prices.energy_price_per_kwh,
            gpu_cost=totals.gpu_hours * prices.on_premises.gpu_hour,
            cpu_cost=totals.cpu_hours * prices.on_premises.cpu_hour,
        )
    ]
    assumptions = [
        Assumption(
            "energy price (on-premises)",
            f"{_money(prices.energy_price_per_kwh, cur)}/kWh",
            prices.origin("energy_price_per_kwh"),
        ),
        Assumption("PUE (on-premises)", f"{prices.pue:g}", prices.origin("pue")),
        Assumption(
            "grid carbon intensity (on-premises)",
            f"{prices.carbon_g_per_kwh:g} g CO2e/kWh",
            prices.origin("carbon_g_per_kwh"),
        ),
        Assumption(
            "on-premises GPU-hour (amortisation)",
            _money(prices.on_premises.gpu_hour, cur),
            prices.origin("on_premises.gpu_hour"),
        ),
        Assumption(
            "on-premises CPU-hour (amortisation)",
            _money(prices.on_premises.cpu_hour, cur),
            prices.origin("on_premises.cpu_hour"),
        ),
    ]
    for i, offer in enumerate(prices.cloud):
        key = f"cloud[{i}]"
        pue = offer.pue if offer.pue is not None else prices.pue
        carbon = (
            offer.carbon_g_per_kwh
            if offer.carbon_g_per_kwh is not None
            else prices.carbon_g_per_kwh
        )
        options.append(
            OptionCost(
                name=offer.name,
                kind="cloud",
                pue=pue,
                carbon_g_per_kwh=carbon,
                gpu_hours=totals.gpu_hours,
                cpu_hours=totals.cpu_hours,
                kwh_measured=it_kwh_measured * pue,
                kwh_estimated=it_kwh_estimated * pue,
                energy_cost_measured=0.0,
                energy_cost_estimated=0.0,
                gpu_cost=totals.gpu_hours * offer.gpu_hour,
                cpu_cost=totals.cpu_hours * offer.cpu_hour,
            )
        )

        def origin(field: str, own: float | None, key: str = key) -> str:
            if own is None:
                return f"the site's ({key}.{field} not given)"
            return prices.origin(f"{key}.{field}")

        assumptions += [
            Assumption(
                f"{offer.name}: GPU-hour",
                _money(offer.gpu_hour, cur),
                prices.origin(f"{key}.gpu_hour"),
            ),
            Assumption(
                f"{offer.name}: CPU-hour",
                _money(offer.cpu_hour, cur),
                prices.origin(f"{key}.cpu_hour"),
            ),
            Assumption(
                f"{offer.name}: PUE",
                f"{pue:g}",
                origin("pue", offer.pue),
            ),
            Assumption(
                f"{offer.name}: carbon intensity",
                f"{carbon:g} g CO2e/kWh",
                origin("carbon_g_per_kwh", offer.carbon_g_per_kwh),
            ),
        ]
    assumptions += [
        Assumption(
            "GPU-hours, CPU-hours",
            "Σ resources/gpu_seconds ÷ 3600, Σ resources/cpu_seconds ÷ 3600",
            "the runs' metrics",
        ),
        Assumption(
            "kWh",
            "Σ energy/<device>_joules ÷ 3.6 MJ x PUE",
            "the runs' metrics; sources in their energy.<device>.source tags",
        ),
        Assumption(
            "cost",
            "on-premises: kWh x energy price + hours x amortisation; cloud: hours x price "
            "(energy included)",
            "definition",
        ),
    ]
    for detail in totals.estimate_details:
        assumptions.append(Assumption("estimator", detail, "the runs' energy.<device>.detail"))
    if nested:
        children = sum(len(n.child_ids) for n in nested)
        assumptions.append(
            Assumption(
                "nested runs",
                f"{children} child run(s) ran inside {len(nested)} parent(s); their joules and "
                "hours are taken out of the parents' so they count once",
                "the runs' parent ids and times",
            )
        )
    return CostReport(
        selection=dict(selection or {}),
        prices=prices,
        runs=tuple(runs),
        nested=tuple(nested),
        totals=totals,
        options=tuple(options),
        assumptions=tuple(assumptions),
        model=model,
        inputs=tuple(inputs),
        serving=serving,
    )


# -- selecting runs (reads the store) ---------------------------------------------------------

_SINCE = re.compile(r"^\s*(?P<n>\d+(?:\.\d+)?)\s*(?P<unit>[smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``30d``, ``12h``, ``2w``, ``90m``, ``45s`` before ``now``, or an ISO date/datetime."""
    now = now or datetime.now(UTC)
    match = _SINCE.match(text)
    if match:
        return now - timedelta(seconds=float(match["n"]) * _UNITS[match["unit"]])
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        msg = (
            f"--since {text!r} is not valid; give an age such as 30d, 12h, 2w, 90m, or a date "
            "such as 2026-01-31"
        )
        raise InvalidArgumentError(msg) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Selection:
    runs: tuple[tuple[Run, str], ...]  # each run with its role ("" outside --model)
    model: str | None = None
    inputs: tuple[str, ...] = ()
    serving: Run | None = None


def _children(store: Store, run_id: str) -> list[Run]:
    return store.search_runs(None, f"parent_id = '{run_id}'", "start_time", limit=None)


def select_runs(
    store: Store,
    *,
    project: str | None = None,
    since: datetime | None = None,
    model: str | None = None,
) -> Selection:
    """The runs of ``project`` started after ``since``; with ``model``, the runs in that
    version's lineage (data preparation, the training run, its scan and trials) instead,
    narrowed by ``project`` and ``since`` when given."""
    if model is None:
        where = None if since is None else f"start_time >= {int(since.timestamp() * 1000)}"
        runs = store.search_runs(project, where, "start_time", limit=None)
        return Selection(runs=tuple((r, "") for r in runs))

    from luminary.lineage import lineage

    lin = lineage(model, store)
    picked: dict[str, tuple[Run, str]] = {}

    def add(run: Run, role: str) -> None:
        picked.setdefault(run.id, (run, role))

    inputs = tuple(d.ref for d in lin.inputs)
    for ref in inputs:
        for run in store.search_runs(
            None, f"tags.{PRODUCES_TAG} like '%{ref}%'", "start_time", limit=None
        ):
            refs = {r.strip() for r in run.tags.get(PRODUCES_TAG, "").split(",")}
            if ref in refs:
                add(run, "data")
    source = lin.run
    if source is not None:
        if source.parent_id is not None:
            scan = store.get_run(source.parent_id)
            add(scan, "scan")
            for trial in _children(store, scan.id):
                add(trial, "training" if trial.id == source.id else "trial")
        add(source, "training")
        for trial in _children(store, source.id):
            add(trial, "trial")
    chosen = [
        (r, role)
        for r, role in picked.values()
        if (project is None or r.project == project) and (since is None or r.start_time >= since)
    ]
    version = lin.version.ref
    wanted = ", ".join(f"'{r}'" for r in dict.fromkeys([version, model]))
    served = store.search_runs(
        None,
        f"tags.kind = 'serving' and tags.model in ({wanted})",
        "start_time desc",
        limit=1,
    )
    return Selection(
        runs=tuple(chosen), model=version, inputs=inputs, serving=served[0] if served else None
    )


def serving_figure(run: Run) -> ServingFigure:
    coverage = run.tags.get("energy.measured", "")
    return ServingFigure(
        run_id=run.id,
        model=run.tags.get("model", ""),
        joules_per_event=_finite(run.metrics.get("serving/joules_per_event")),
        events_per_s=_finite(run.metrics.get("serving/events_per_s")),
        measured=coverage == "all",
        coverage=coverage,
    )


def cost_report(
    *,
    project: str | None = None,
    since: str | None = None,
    model: str | None = None,
    prices: str | Path | None = None,
    store: Store | None = None,
    now: datetime | None = None,
) -> CostReport:
    """Select runs (see :func:`select_runs`), price them with the sheet at ``prices`` (default
    ``$LUMINARY_HOME/prices.yaml``, else the example) and build the report."""
    sheet = load_prices(prices)
    if store is None:
        from luminary._current import get_store

        store = get_store()
    start = parse_since(since, now) if since else None
    chosen = select_runs(store, project=project, since=start, model=model)
    return build_report(
        [usage_of(run, role) for run, role in chosen.runs],
        sheet,
        selection={"project": project, "since": since, "model": model},
        model=chosen.model,
        inputs=chosen.inputs,
        serving=serving_figure(chosen.serving) if chosen.serving is not None else None,
    )
