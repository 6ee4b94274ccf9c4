"""The `netbed` command: parses, calls the Python API, renders. Nothing else lives here."""

from __future__ import annotations

import json
import sys

import click
from rich.console import Console

from netbed import engine
from netbed.errors import NetbedError
from netbed.progress import Event, Phase

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def render_progress(event: Event) -> None:
    """Draw a progress event as one terminal line: steps, what they do, how long they took."""
    took = f" ({event.seconds:.1f} s)" if event.seconds is not None else ""
    if event.phase is Phase.START:
        err.print(f"[bold cyan]>[/] {event.step} ...")
    elif event.phase is Phase.INFO:
        err.print(f"    [dim]{event.detail}[/]")
    elif event.phase is Phase.DONE:
        err.print(f"[green]✓[/] {event.step}{took}")
    elif event.phase is Phase.SKIP:
        err.print(f"[green]✓[/] {event.step}: {event.detail}, nothing to do{took}")
    else:
        err.print(f"[red]✗[/] {event.step}: {event.detail}{took}")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="netbed")
def cli() -> None:
    """netbed: real TCP hosts in containers, real faults, proof from the wire."""


@cli.command()
@click.option("--fix", is_flag=True, help="Set up what is missing (Debian, root): engine, daemon, Compose v2, images.")
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
def doctor(fix: bool, as_json: bool) -> None:
    """Say what netbed needs and whether it is there."""
    findings = engine.fix(render_progress) if fix else engine.diagnose()
    if as_json:
        click.echo(json.dumps([f.__dict__ for f in findings], indent=2))
    else:
        for f in findings:
            mark = "[green]✓[/]" if f.ok else "[red]✗[/]"
            remedy = f" [yellow]-> {f.remedy}[/]" if not f.ok and f.remedy else ""
            out.print(f"{mark} {f.name}: {f.detail}{remedy}")
    if not all(f.ok for f in findings):
        sys.exit(1)


def main() -> None:
    """Entry point: a NetbedError becomes one line on stderr and exit status 1, never a traceback."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        err.print("netbed: interrupted")
        sys.exit(130)
    except NetbedError as exc:
        err.print(f"netbed: {exc}", markup=False)
        sys.exit(1)
    except KeyboardInterrupt:
        err.print("netbed: interrupted")
        sys.exit(130)
