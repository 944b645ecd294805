"""`fengkong simulate`: write a synthetic lending world with ground truth to a directory."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from fengkong.simulate.world import FRAUD_TYPOLOGIES, TYPOLOGIES, WorldConfig, generate

_DEFAULTS = WorldConfig()


def _share(name: str, what: str) -> Any:
    return typer.Option(
        f"--{name.replace('_', '-')}",
        min=0.0,
        max=1.0,
        help=f"share of customers who are {what}",
    )


def simulate(
    customers: Annotated[
        int, typer.Option("--customers", min=1, max=10_000_000, help="customers in the world")
    ] = 10_000,
    seed: Annotated[int, typer.Option("--seed", min=0, help="random seed: the same seed gives the same files")] = 0,
    out: Annotated[Path, typer.Option("--out", help="directory to write the files to (created if missing)")] = (
        Path("world")
    ),
    ring: Annotated[float, _share("ring", "in fraud rings")] = _DEFAULTS.ring,
    multi_head: Annotated[float, _share("multi_head", "multi-head borrowers (多头借贷)")] = _DEFAULTS.multi_head,
    cash_out: Annotated[float, _share("cash_out", "cashing out (套现) through a merchant")] = _DEFAULTS.cash_out,
    takeover: Annotated[float, _share("takeover", "victims of account takeover")] = _DEFAULTS.takeover,
    scam_victim: Annotated[float, _share("scam_victim", "victims of a scam")] = _DEFAULTS.scam_victim,
    days: Annotated[int, typer.Option("--days", min=7, max=3650, help="length of the simulated period")] = 60,
    end: Annotated[
        str, typer.Option("--end", help="end of the period, ISO 8601 with time zone (fixed, not the clock)")
    ] = _DEFAULTS.end,
    as_json: Annotated[bool, typer.Option("--json", help="print the summary as JSON")] = False,
) -> None:
    """Generate a synthetic lending world with ground truth: applications.jsonl, events.jsonl and truth.csv.

    Honest customers (families sharing a phone, offices sharing an IP, phone changes, late payments) beside
    fraud rings, multi-head borrowers, cash-out, account takeover and scam victims; the same seed and options
    give byte-identical files. Replay it by deciding each application at its time in application_times.csv
    between the events that precede it.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    out_console = Console(soft_wrap=True)
    err = Console(stderr=True, soft_wrap=True)
    try:
        config = WorldConfig(
            customers=customers,
            seed=seed,
            ring=ring,
            multi_head=multi_head,
            cash_out=cash_out,
            takeover=takeover,
            scam_victim=scam_victim,
            days=days,
            end=end,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None

    started = time.perf_counter()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err, disable=as_json or not err.is_terminal) as progress:
        gen_task = progress.add_task("generating customers", total=customers)
        world = generate(config, on_progress=lambda done, _total: progress.update(gen_task, completed=done))
        write_task = progress.add_task("writing files", total=len(world.applications) + len(world.events))
        try:
            paths = world.write(out, on_progress=lambda done, _total: progress.update(write_task, completed=done))
        except OSError as exc:
            err.print(f"[bold red]error[/] cannot write to {out}: {exc.strerror or exc}")
            raise typer.Exit(1) from None
    elapsed = time.perf_counter() - started

    counts = world.typology_counts()
    summary = {
        "seed": seed,
        "customers": counts,
        "applications": len(world.applications),
        "events": world.event_counts(),
        "files": {name: str(path) for name, path in paths.items()},
        "seconds": round(elapsed, 2),
    }
    if as_json:
        out_console.print_json(json.dumps(summary, ensure_ascii=False))
        return
    table = Table("typology", "customers", "share", title=f"world seed {seed}: {customers:,} customers")
    for typology in TYPOLOGIES:
        table.add_row(typology, f"{counts[typology]:,}", f"{counts[typology] / customers:.1%}")
    out_console.print(table)
    events = world.event_counts()
    out_console.print(
        f"{len(world.applications):,} applications, {sum(events.values()):,} events ("
        + ", ".join(f"{k} {v:,}" for k, v in events.items())
        + ")",
        highlight=False,
    )
    for path in paths.values():
        out_console.print(f"wrote {path}", highlight=False)
    fraud = sum(counts[t] for t in FRAUD_TYPOLOGIES)
    out_console.print(f"{fraud:,} customers with a fraud typology; done in {elapsed:.1f} s", highlight=False)
