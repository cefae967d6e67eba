"""`evsite ocpp …`: operator actions on the chargers of a running `evsite serve`, through its REST API.

The server owns the charger connections, so these commands do not speak OCPP themselves: each is
one authenticated API call (the same one the dashboard makes), audit-logged under the token's name.
`--api` / `EVSITE_API` and `--token` / `EVSITE_TOKEN` say where and as whom.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

ocpp_app = typer.Typer(
    help="Operator actions on the chargers of a running `evsite serve` (through its REST API).",
    no_args_is_help=True,
)

ApiUrl = Annotated[str, typer.Option("--api", envvar="EVSITE_API", help="Base URL of the evsite API.")]
Token = Annotated[
    str,
    typer.Option("--token", envvar="EVSITE_TOKEN", help="API token (operator role for actions).", show_default=False),
]
Charger = Annotated[str, typer.Argument(help="Charge point id (the EVSE id in the site file).", show_default=False)]
DEFAULT_API = "http://127.0.0.1:8000"


def register(app: typer.Typer) -> None:
    app.add_typer(ocpp_app, name="ocpp")


def _call(api: str, token: str, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """One API request; a problem answer becomes a one-line error and exit code 1."""
    import httpx

    try:
        response = httpx.request(
            method, f"{api.rstrip('/')}/api/v1{path}", json=body, timeout=60.0,
            headers={"Authorization": f"Bearer {token}"},
        )  # fmt: skip
    except httpx.HTTPError as exc:
        typer.echo(f"cannot reach the evsite API at {api}: {exc}", err=True)
        raise typer.Exit(2) from None
    if response.status_code >= 400:
        try:
            problem = response.json()
            text = f"{problem.get('title', response.reason_phrase)}: {problem.get('detail', '')}".rstrip(": ")
        except ValueError:
            text = response.text or response.reason_phrase
        typer.echo(f"{response.status_code} {text}", err=True)
        raise typer.Exit(1)
    return response.json() if response.content else None


def _action(api: str, token: str, charger: str, action: str, body: dict[str, Any]) -> None:
    result = _call(api, token, "POST", f"/chargers/{charger}/{action}", body)
    typer.echo(f"{result['charger']}: {result['action']} → {result['status']}")


@ocpp_app.command("chargers")
def chargers(api: ApiUrl = DEFAULT_API, token: Token = "", as_json: bool = typer.Option(False, "--json")) -> None:
    """List the chargers with connection state and each connector's status and setpoint."""
    rows = _call(api, token, "GET", "/chargers")
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        state = "online " if row.get("connected") else "offline"
        connectors = ", ".join(
            f"#{c.get('connector_id')} {c.get('status') or '?'} {c.get('setpoint_a') or 0:g} A"
            for c in row.get("connectors", [])
        )
        typer.echo(f"{row['id']:<12} {state} {connectors}")


@ocpp_app.command("remote-start")
def remote_start(
    charger: Charger,
    id_tag: Annotated[str, typer.Option(help="The id tag to start the session for.")],
    connector: Annotated[int, typer.Option(min=1, max=8)] = 1,
    api: ApiUrl = DEFAULT_API,
    token: Token = "",
) -> None:
    """RemoteStartTransaction."""
    _action(api, token, charger, "remote-start", {"connector_id": connector, "id_tag": id_tag})


@ocpp_app.command("remote-stop")
def remote_stop(
    charger: Charger,
    transaction: Annotated[int, typer.Option(help="Transaction id to stop.", min=0)],
    api: ApiUrl = DEFAULT_API,
    token: Token = "",
) -> None:
    """RemoteStopTransaction."""
    _action(api, token, charger, "remote-stop", {"transaction_id": transaction})


@ocpp_app.command("reset")
def reset(
    charger: Charger,
    hard: Annotated[bool, typer.Option("--hard", help="Hard reset (default soft).")] = False,
    api: ApiUrl = DEFAULT_API,
    token: Token = "",
) -> None:
    """Reset (soft: the charger ends its sessions first)."""
    _action(api, token, charger, "reset", {"type": "Hard" if hard else "Soft"})


@ocpp_app.command("unlock")
def unlock(
    charger: Charger, connector: Annotated[int, typer.Option(min=1, max=8)] = 1, api: ApiUrl = DEFAULT_API,
    token: Token = "",
) -> None:  # fmt: skip
    """UnlockConnector."""
    _action(api, token, charger, "unlock", {"connector_id": connector})


@ocpp_app.command("availability")
def availability(
    charger: Charger,
    state: Annotated[str, typer.Argument(help="Operative or Inoperative.")],
    connector: Annotated[int, typer.Option(min=0, max=8, help="0: the whole charger.")] = 0,
    api: ApiUrl = DEFAULT_API,
    token: Token = "",
) -> None:
    """ChangeAvailability."""
    kind = state.capitalize()
    if kind not in ("Operative", "Inoperative"):
        raise typer.BadParameter("expected Operative or Inoperative", param_hint="STATE")
    _action(api, token, charger, "availability", {"connector_id": connector, "type": kind})


@ocpp_app.command("trigger")
def trigger(
    charger: Charger,
    message: Annotated[str, typer.Argument(help="BootNotification, Heartbeat, MeterValues, StatusNotification, …")],
    connector: Annotated[int | None, typer.Option(min=0, max=8)] = None,
    api: ApiUrl = DEFAULT_API,
    token: Token = "",
) -> None:
    """TriggerMessage."""
    _action(api, token, charger, "trigger", {"message": message, "connector_id": connector})


@ocpp_app.command("get-config")
def get_config(charger: Charger, api: ApiUrl = DEFAULT_API, token: Token = "") -> None:
    """GetConfiguration: every key the charger reports."""
    for key, value in _call(api, token, "GET", f"/chargers/{charger}/configuration").items():
        typer.echo(f"{key} = {value}")


@ocpp_app.command("set-config")
def set_config(
    charger: Charger,
    key: Annotated[str, typer.Argument(show_default=False)],
    value: Annotated[str, typer.Argument(show_default=False)],
    api: ApiUrl = DEFAULT_API,
    token: Token = "",
) -> None:
    """ChangeConfiguration of one key."""
    result = _call(api, token, "PUT", f"/chargers/{charger}/configuration", {"key": key, "value": value})
    typer.echo(f"{result['charger']}: {result['action']} → {result['status']}")
