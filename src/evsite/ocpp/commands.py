"""CLI: `evsite serve` (the site controller), `evsite certs`, `evsite hash-password`."""

from __future__ import annotations

import contextlib
from collections.abc import Coroutine
from pathlib import Path
from typing import Annotated, Any

import typer

SETUP_TOKEN = "serve-admin"
"""Name of the admin token `--api-token` prints; each start replaces it (create named tokens for everyday use)."""


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
        typer.Option(help="Database URL: sqlite+aiosqlite:///path or postgresql+asyncpg://… [default: ./SITE.db]"),
    ] = None,
    accept_unknown: Annotated[
        bool | None, typer.Option("--accept-unknown/--reject-unknown", help="Admit chargers not in the site.")
    ] = None,
    open_authorization: Annotated[
        bool, typer.Option(help="Free vend: accept id tags evsite does not know (blocked ones stay refused).")
    ] = False,
    call_timeout: Annotated[float | None, typer.Option(help="Seconds to wait for a charger's answer.")] = None,
    heartbeat: Annotated[int | None, typer.Option(help="HeartbeatInterval given at boot (s).")] = None,
    security_profile: Annotated[
        int,
        typer.Option(
            min=0,
            max=3,
            help="Minimum OCPP security profile for every charger: 0 none, 1 Basic auth, 2 TLS + Basic "
            "auth, 3 TLS with client certificates (1.6 security whitepaper).",
        ),
    ] = 0,
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
    api_host: Annotated[str, typer.Option(help="Address the REST API and dashboard bind.")] = "127.0.0.1",
    api_port: Annotated[int, typer.Option(help="Port of the REST API and dashboard (0: no API).")] = 8000,
    api_max_body: Annotated[
        int, typer.Option(min=1, help="Largest API request body in bytes; larger ones get 413 unread.")
    ] = 1 << 20,
    policy: Annotated[
        str | None, typer.Option(help="Load-sharing policy (fair, mpc) [default: the site's control.policy].")
    ] = None,
    integrations: Annotated[
        bool, typer.Option(help="Run the site's Modbus, OpenADR, BACnet and MQTT integrations.")
    ] = True,
    api_token: Annotated[
        bool,
        typer.Option(
            help=f"Print a new admin API token named {SETUP_TOKEN!r} (first set-up); it revokes the one printed by "
            "the previous start, so only one such token is ever valid."
        ),
    ] = False,
    log_level: Annotated[str, typer.Option(help="Logging level.")] = "INFO",
    # -- cluster (#16): the same command on N machines forms a cluster; see docs/cluster.md
    cluster: Annotated[
        str | None, typer.Option(help="Join a cluster through this NATS server (nats://HOST:4222).")
    ] = None,
    node_id: Annotated[
        str | None, typer.Option(help="This node's id in the cluster [default: host-pid-random].")
    ] = None,
    cluster_lease: Annotated[
        float, typer.Option(min=1.0, help="Leader and node lease in seconds (the same on every node).")
    ] = 6.0,
    cluster_namespace: Annotated[
        str, typer.Option(help="Prefix of the cluster's NATS buckets and subjects.")
    ] = "evsite",
    cluster_lead: Annotated[
        bool, typer.Option(help="Stand for site leadership (--no-cluster-lead: a gateway-only node).")
    ] = True,
) -> None:
    """Run the site controller: OCPP central system (1.6J and 2.0.1), load manager, REST API, dashboard, integrations.

    Chargers connect to ws://OCPP_HOST:OCPP_PORT/ocpp/{charge point id}; the dashboard is at
    http://API_HOST:API_PORT/dashboard/ and the API's OpenAPI description at /docs."""
    import asyncio
    import logging
    import signal

    from evsite.console import load_or_exit
    from evsite.ocpp import certs as pki
    from evsite.ocpp.server import ServerSettings
    from evsite.store.db import default_url

    if security_profile >= 2 and tls_cert is None and generate_cert is None:
        raise typer.BadParameter("needs --tls-cert/--tls-key or --generate-cert (TLS)", param_hint="--security-profile")
    if security_profile == 3 and client_ca is None:
        raise typer.BadParameter("3 needs --client-ca (chargers' client certificates)", param_hint="--security-profile")
    from evsite.logs import configure

    configure(log_level)
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

    cluster_settings = None
    if cluster is not None:
        from evsite.optional import available, missing_message

        if not available("nats"):
            raise typer.BadParameter(missing_message("nats"), param_hint="--cluster")
        from evsite.cluster import ClusterSettings

        if not (db or "").startswith("postgresql"):
            # Every node assigns transaction ids and stores what its chargers send: one database for all.
            raise typer.BadParameter("a cluster needs --db postgresql+asyncpg://… shared by every node")

        try:
            cluster_settings = ClusterSettings(
                cluster,
                node_id=node_id or "",
                lease_s=cluster_lease,
                retry_s=min(1.0, cluster_lease),
                namespace=cluster_namespace,
                lead=cluster_lead,
            )
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--cluster") from None

    async def run() -> None:
        from evsite.api.tokens import Role, TokenStore
        from evsite.runtime.stack import StackOptions, running_site

        options = StackOptions(
            site=site,
            db_url=db or default_url(site_file),
            ocpp=settings,
            api_host=api_host,
            api_port=api_port or None,
            api_max_body_bytes=api_max_body,
            policy=policy,
            integrations=integrations,
            cluster=cluster_settings,
        )
        stack = running_site(options)
        try:
            running = await stack.__aenter__()
        except OSError as exc:  # port in use, unreachable database server…
            typer.echo(f"cannot start: {exc.strerror or exc}", err=True)
            raise typer.Exit(2) from None
        except Exception as exc:  # bad database URL or credentials
            typer.echo(f"cannot open the database {options.db_url}: {exc.__class__.__name__}: {exc}", err=True)
            typer.echo("(SQLite URLs: sqlite+aiosqlite:///relative.db or sqlite+aiosqlite:////absolute.db)", err=True)
            raise typer.Exit(2) from None
        try:
            scheme = "wss" if ssl_context else "ws"
            port = running.central.port
            typer.echo(f"evsite serving {site.name}")
            typer.echo(f"  OCPP 1.6J: {scheme}://{ocpp_host}:{port}/ocpp/{{charge point id}}")
            if running.api_url:
                typer.echo(f"  dashboard: {running.api_url}/dashboard/   API: {running.api_url}/docs")
                if api_token and running.runtime.db is not None:
                    token = await TokenStore(running.runtime.db).rotate(SETUP_TOKEN, Role.ADMIN)
                    typer.echo(f"  admin API token (shown once): {token}  ({SETUP_TOKEN}; the previous one is revoked)")
            if running.gateway is not None:
                from evsite.cluster import redacted

                typer.echo(f"  cluster: node {running.gateway.node_id} on {redacted(cluster or '')}")
            typer.echo("  running: " + ", ".join(k for k, v in sorted(running.runtime.parts.items()) if v))
            stop = asyncio.Event()
            for sig in (signal.SIGTERM, signal.SIGINT):
                asyncio.get_running_loop().add_signal_handler(sig, stop.set)
            await stop.wait()  # SIGTERM or Ctrl-C: close connections, finish queued writes, exit
        finally:
            await stack.__aexit__(None, None, None)

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
