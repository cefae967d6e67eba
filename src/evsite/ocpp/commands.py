"""CLI: `evsite serve` (the OCPP central system), `evsite certs`, `evsite hash-password`."""

from __future__ import annotations

import contextlib
from collections.abc import Coroutine
from pathlib import Path
from typing import Annotated, Any

import typer


def register(app: typer.Typer) -> None:
    app.command()(serve)
    app.command()(certs)
    app.command("hash-password")(hash_password_command)


def serve(
    site_file: Annotated[Path, typer.Argument(help="Site file (YAML).", show_default=False)],
    ocpp_host: Annotated[str, typer.Option(help="Address the OCPP WebSocket server binds.")] = "127.0.0.1",
    ocpp_port: Annotated[int, typer.Option(help="OCPP WebSocket port.")] = 9000,
    db: Annotated[
        str | None,
        typer.Option(help="Database URL: sqlite+aiosqlite:///path or postgresql+asyncpg://… [default: SITE.db]"),
    ] = None,
    accept_unknown: Annotated[
        bool | None, typer.Option("--accept-unknown/--reject-unknown", help="Admit chargers not in the site.")
    ] = None,
    open_authorization: Annotated[
        bool, typer.Option(help="Free vend: accept id tags evsite does not know (blocked ones stay refused).")
    ] = False,
    call_timeout: Annotated[float | None, typer.Option(help="Seconds to wait for a charger's answer.")] = None,
    heartbeat: Annotated[int | None, typer.Option(help="HeartbeatInterval given at boot (s).")] = None,
    security_profile: Annotated[int, typer.Option(help="Minimum security profile for every charger (0-2).")] = 0,
    tls_cert: Annotated[Path | None, typer.Option(help="Server certificate (PEM) for wss:// (profile 2).")] = None,
    tls_key: Annotated[Path | None, typer.Option(help="Private key (PEM) of --tls-cert.")] = None,
    client_ca: Annotated[
        Path | None, typer.Option(help="CA (PEM) that signs chargers' client certificates (security profile 3).")
    ] = None,
    generate_cert: Annotated[
        Path | None, typer.Option(help="Create a test CA + server certificate in this directory and use them.")
    ] = None,
    lift_lease: Annotated[
        float, typer.Option(help="Seconds a lift of the fail-safe cap lasts without renewal (0 disables lifts).")
    ] = 120.0,
    log_level: Annotated[str, typer.Option(help="Logging level.")] = "INFO",
) -> None:
    """Run the OCPP 1.6J central system for a site (chargers connect to ws://HOST:PORT/ocpp/{id})."""
    import asyncio
    import logging
    import signal

    from evsite.cli import load_or_exit
    from evsite.ocpp import certs as pki
    from evsite.ocpp.server import CentralSystem, ServerSettings
    from evsite.store.db import default_url
    from evsite.store.ocpp import OcppStore

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    site = load_or_exit(site_file)
    ssl_context = None
    if generate_cert is not None:
        paths = pki.generate(generate_cert, [ocpp_host, "localhost"])
        tls_cert, tls_key = paths["cert"], paths["key"]
        typer.echo(f"test CA for the chargers' trust store: {paths['ca']}")
    if tls_cert is not None or tls_key is not None:
        if tls_cert is None or tls_key is None:
            raise typer.BadParameter("--tls-cert and --tls-key go together")
        ssl_context = pki.server_context(tls_cert, tls_key, client_ca)
    settings = ServerSettings.from_site(
        site,
        host=ocpp_host,
        port=ocpp_port,
        accept_unknown=accept_unknown,
        call_timeout_s=call_timeout,
        heartbeat_interval_s=heartbeat,
        min_security_profile=security_profile,
        ssl=ssl_context,
        lift_lease_s=lift_lease,
        open_authorization=open_authorization,
    )

    async def run() -> None:
        url = db or default_url(site_file)
        try:
            store = await OcppStore.open(url)
        except Exception as exc:  # unreachable server, bad path, wrong credentials…
            typer.echo(f"cannot open the database {url}: {exc.__class__.__name__}: {exc}", err=True)
            typer.echo("(SQLite URLs: sqlite+aiosqlite:///relative.db or sqlite+aiosqlite:////absolute.db)", err=True)
            raise typer.Exit(2) from None
        cs = CentralSystem(store, site, settings=settings)
        try:
            await cs.start()
            scheme = "wss" if ssl_context else "ws"
            typer.echo(f"OCPP 1.6J central system for {site.name}: {scheme}://{ocpp_host}:{cs.port}/ocpp/{{id}}")
            stop = asyncio.Event()
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
            await stop.wait()  # SIGTERM or Ctrl-C: close connections, finish queued writes, exit
        finally:
            await cs.stop()
            await store.close()

    with contextlib.suppress(KeyboardInterrupt):
        run_event_loop(run())


def run_event_loop(main: Coroutine[Any, Any, None]) -> None:
    """Run on uvloop when it is installed (it comes with uvicorn[standard]); else on asyncio's loop."""
    try:
        import uvloop
    except ImportError:
        import asyncio

        asyncio.run(main)
    else:
        uvloop.run(main)


def certs(
    out_dir: Annotated[Path, typer.Argument(help="Directory for ca.pem, server.pem, server.key.")],
    host: Annotated[list[str] | None, typer.Option(help="Host name or IP the chargers use (repeatable).")] = None,
    charger: Annotated[
        list[str] | None, typer.Option(help="Also issue a client certificate for this charger id (profile 3).")
    ] = None,
) -> None:
    """Create a self-signed test CA and a server certificate for OCPP security profiles 2 and 3 (TLS)."""
    from evsite.ocpp import certs as pki

    paths = pki.generate(out_dir, host or ["127.0.0.1", "localhost"])
    for cp_id in charger or []:
        issued = pki.issue_charger_cert(paths["ca"], paths["ca_key"], cp_id, out_dir / "chargers")
        paths[f"{cp_id} cert"], paths[f"{cp_id} key"] = issued["cert"], issued["key"]
    for name, path in paths.items():
        typer.echo(f"{name}: {path}")


def hash_password_command(
    password: Annotated[str, typer.Option(prompt=True, hide_input=True, help="The charger's Basic-auth password.")],
) -> None:
    """Print the hash to put in a charger's `ocpp.password_hash` (security profiles 1 and 2)."""
    from evsite.ocpp.auth import hash_password

    typer.echo(hash_password(password))
