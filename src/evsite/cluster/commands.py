"""CLI: `evsite cluster status`."""

from __future__ import annotations

from typing import Annotated

import typer

cluster_app = typer.Typer(help="Several evsite nodes on NATS JetStream (see docs/cluster.md).", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(cluster_app, name="cluster")


@cluster_app.command()
def status(
    nats_url: Annotated[str, typer.Option("--cluster", help="NATS URL of the cluster.")] = "nats://127.0.0.1:4222",
    namespace: Annotated[str, typer.Option(help="The cluster's namespace (--cluster-namespace of serve).")] = "evsite",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Nodes alive, each site's leader and fencing epoch, chargers per node, chargers whose node died."""
    import asyncio
    import json

    from evsite.optional import available, missing_message

    if not available("nats"):
        typer.echo(missing_message("nats"), err=True)
        raise typer.Exit(2)

    async def read() -> dict:
        import nats

        from evsite.cluster.status import cluster_status

        try:
            nc = await nats.connect(nats_url, connect_timeout=3, max_reconnect_attempts=0)
        except Exception as exc:
            from evsite.cluster.node import redacted

            typer.echo(f"cannot reach NATS at {redacted(nats_url)}: {exc}", err=True)
            raise typer.Exit(2) from None
        try:
            return await cluster_status(nc, namespace)
        finally:
            await nc.close()

    result = asyncio.run(read())
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    typer.echo(f"nodes ({len(result['nodes'])}):")
    for node_id, info in sorted(result["nodes"].items()):
        sites = ", ".join(info["sites"]) or "-"
        typer.echo(
            f"  {node_id}: {info['chargers']} chargers, heartbeat {info['heartbeat_age_s']} s ago, sites: {sites}"
        )
    typer.echo(f"sites ({len(result['sites'])}):")
    for site, info in sorted(result["sites"].items()):
        typer.echo(f"  {site}: leader {info['leader']}, epoch {info['epoch']}")
    if result["orphaned"]:
        typer.echo(f"chargers whose node died, not reconnected yet: {len(result['orphaned'])}")
