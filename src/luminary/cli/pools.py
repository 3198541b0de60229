"""``luminary pools list|add|remove|serve`` and ``luminary quotas list|set|remove``."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from luminary.cli._output import OUTPUT, Output, emit_json, new_table, out

app = typer.Typer(help="Pools: machines that run jobs through one executor (local, Ray, Slurm).")
quotas_app = typer.Typer(help="Quotas: each project's guaranteed GPUs and CPUs, weight and cohort.")


@app.command("list")
def list_pools(output: Output = OUTPUT) -> None:
    """Pools, their capacity, and the agents serving them."""
    import luminary as lm
    from luminary._clock import now_ms
    from luminary.compute import AGENT_STALE_MS

    store = lm.get_store()
    pools = store.list_pools()
    agents = [a for a in store.list_agents() if a.heartbeat_ms >= now_ms() - AGENT_STALE_MS]
    if output is Output.json:
        emit_json(
            [{**p.to_dict(), "agents": [a.id for a in agents if a.pool == p.name]} for p in pools]
        )
        return
    table = new_table()
    for col in (
        "pool",
        "executor",
        "nodes",
        "GPUs/node",
        "GPU memory",
        "CPUs/node",
        "memory",
        "options",
        "enabled",
        "agents",
    ):
        table.add_column(col)
    for p in pools:
        served = [a.id for a in agents if a.pool == p.name]
        table.add_row(
            p.name,
            p.executor,
            str(p.nodes),
            str(p.gpus),
            f"{p.gpu_memory_mb} MiB" if p.gpu_memory_mb else "",
            f"{p.cpus:g}",
            f"{p.memory_mb} MiB" if p.memory_mb else "",
            escape(", ".join(f"{k}={v}" for k, v in p.options.items())),
            "yes" if p.enabled else "[yellow]no[/]",
            escape(", ".join(served)) if served else "[yellow]none[/]",
        )
    out.print(table if pools else "no pools yet; luminary pools add local --gpus 4 makes one")


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="Pool name, e.g. local, ray-lxplus, slurm-gpu.")],
    executor: Annotated[str, typer.Option(help="local, ray or slurm.")] = "local",
    nodes: Annotated[int, typer.Option(min=1)] = 1,
    gpus: Annotated[
        int | None, typer.Option(help="GPUs per node (logical ones allowed; default: found).")
    ] = None,
    gpu_memory: Annotated[
        str | None, typer.Option("--gpu-memory", help="Per GPU, e.g. 80G.")
    ] = None,
    cpus: Annotated[
        float | None, typer.Option(help="CPUs per node (default: this machine's).")
    ] = None,
    memory: Annotated[
        str | None, typer.Option(help="Memory per node (default: this machine's).")
    ] = None,
    option: Annotated[
        list[str] | None,
        typer.Option("--option", "-O", help="Executor setting KEY=VALUE (address=…, partition=…)."),
    ] = None,
    disabled: Annotated[bool, typer.Option("--disabled", help="Take no new jobs.")] = False,
    discover: Annotated[
        bool, typer.Option("--discover", help="Ask the engine (Ray, Slurm) for the capacity.")
    ] = False,
) -> None:
    """Create or replace a pool. Unset sizes of a local pool are this machine's."""
    import luminary as lm
    from luminary.compute import Pool, parse_memory
    from luminary.compute.jobs import machine_pool
    from luminary.errors import InvalidArgumentError

    options = {}
    for item in option or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            msg = f"--option {item!r} is not valid; give KEY=VALUE"
            raise InvalidArgumentError(msg)
        options[key] = value
    here = machine_pool(name) if executor == "local" else None
    pool = Pool(
        name=name,
        executor=executor,
        nodes=nodes,
        gpus=gpus if gpus is not None else (here.gpus if here else 0),
        gpu_memory_mb=parse_memory(gpu_memory, "gpu_memory")
        if gpu_memory
        else (here.gpu_memory_mb if here else 0),
        cpus=cpus if cpus is not None else (here.cpus if here else 1.0),
        memory_mb=parse_memory(memory) if memory else (here.memory_mb if here else 0),
        options=options,
        enabled=not disabled,
    )
    store = lm.get_store()
    if discover:
        from luminary.compute import make_executor

        found = make_executor(pool, store).discover()
        if found is None:
            msg = f"the {executor} engine reported no capacity for pool {name!r}; give the sizes"
            raise InvalidArgumentError(msg)
        pool = found
    store.put_pool(pool)
    out.print(
        f"pool [bold]{pool.name}[/] ({pool.executor}): {pool.nodes} node(s) x "
        f"{pool.gpus} GPU, {pool.cpus:g} CPU, {pool.memory_mb} MiB"
    )


@app.command("remove")
def remove(name: Annotated[str, typer.Argument()]) -> None:
    """Remove a pool (refused while jobs are placed on it)."""
    import luminary as lm

    lm.get_store().remove_pool(name)
    out.print(f"removed pool {name}")


@app.command("serve")
def serve(
    name: Annotated[str, typer.Argument(help="The pool to serve.")],
    idle_exit: Annotated[
        float | None, typer.Option("--idle-exit", help="Exit after this many idle seconds.")
    ] = None,
    heartbeat: Annotated[
        float | None, typer.Option(min=0.1, help="Heartbeat seconds (LUMINARY_JOB_HEARTBEAT_S).")
    ] = None,
) -> None:
    """Serve a pool from this process: claim its jobs, launch them, watch them (Ctrl-C stops;
    running local jobs are stopped, Ray and Slurm jobs go on)."""
    from luminary.compute.agent import main

    args = [name] + ([] if heartbeat is None else ["--heartbeat", str(heartbeat)])
    if idle_exit is not None:
        args += ["--idle-exit", str(idle_exit)]
    raise typer.Exit(main(args))


@quotas_app.command("list")
def list_quotas(output: Output = OUTPUT) -> None:
    """Quotas, weights and cohorts."""
    import luminary as lm

    quotas = lm.get_store().list_quotas()
    if output is Output.json:
        emit_json([q.to_dict() for q in quotas])
        return
    table = new_table()
    for col in ("project", "GPUs", "CPUs", "memory", "weight", "cohort", "borrow GPUs"):
        table.add_column(col)
    for q in quotas:
        table.add_row(
            q.project,
            f"{q.gpus:g}",
            f"{q.cpus:g}",
            f"{q.memory_mb} MiB" if q.memory_mb else "",
            f"{q.weight:g}",
            q.cohort or "",
            "" if q.borrow_gpus is None else f"{q.borrow_gpus:g}",
        )
    out.print(table if quotas else "no quotas; every project has weight 1 and shares what is idle")


@quotas_app.command("set")
def set_quota(
    project: Annotated[str, typer.Argument()],
    gpus: Annotated[float, typer.Option(min=0, help="Guaranteed GPUs.")] = 0.0,
    cpus: Annotated[float, typer.Option(min=0, help="Guaranteed CPUs.")] = 0.0,
    memory: Annotated[str | None, typer.Option(help="Guaranteed memory, e.g. 256G.")] = None,
    weight: Annotated[float, typer.Option(help="Fair-share weight.")] = 1.0,
    cohort: Annotated[
        str | None, typer.Option(help="Projects that lend each other idle quota.")
    ] = None,
    borrow_gpus: Annotated[float | None, typer.Option("--borrow-gpus", min=0)] = None,
    borrow_cpus: Annotated[float | None, typer.Option("--borrow-cpus", min=0)] = None,
) -> None:
    """Set a project's quota, weight and cohort."""
    import luminary as lm
    from luminary.compute import Quota, parse_memory

    quota = Quota(
        project=project,
        gpus=gpus,
        cpus=cpus,
        memory_mb=parse_memory(memory) if memory else 0,
        weight=weight,
        cohort=cohort,
        borrow_gpus=borrow_gpus,
        borrow_cpus=borrow_cpus,
    )
    lm.get_store().set_quota(quota)
    out.print(
        f"quota of [bold]{project}[/]: {gpus:g} GPU, {cpus:g} CPU, weight {weight:g}"
        + (f", cohort {cohort}" if cohort else "")
    )


@quotas_app.command("remove")
def remove_quota(project: Annotated[str, typer.Argument()]) -> None:
    """Remove a project's quota (it keeps weight 1 and uses what is idle)."""
    import luminary as lm

    lm.get_store().remove_quota(project)
    out.print(f"removed the quota of {project}")
