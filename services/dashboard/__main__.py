"""Run the dashboard: ``python -m services.dashboard`` (settings from ``RADGUARD_DASHBOARD_*``)."""

from __future__ import annotations

import sys

from aiohttp import web
from pydantic import ValidationError

from services.dashboard.adapters.apis import GovernanceApi, MonitoringApi
from services.dashboard.app import build_app
from services.dashboard.settings import DashboardSettings


def main() -> None:
    """Entry point; a bad setting prints one line naming the variable and exits 2."""
    try:
        settings = DashboardSettings()
    except ValidationError as exc:
        for err in exc.errors():
            field = str(err["loc"][0]) if err["loc"] else "?"
            print(f"dashboard: RADGUARD_DASHBOARD_{field.upper()}: {err['msg']}", file=sys.stderr)
        sys.exit(2)

    async def factory() -> web.Application:
        governance = GovernanceApi(settings.governance_target, settings.rpc_timeout_s)
        monitoring = MonitoringApi(settings.monitoring_target, settings.rpc_timeout_s)
        return build_app(settings, governance, monitoring)

    web.run_app(factory(), host=settings.host, port=settings.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
