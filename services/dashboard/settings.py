"""Settings of the dashboard process, from ``RADGUARD_DASHBOARD_*`` variables."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class DashboardSettings(BaseSettings):
    """Where the dashboard listens and which APIs it reads.

    Every field can be set with ``RADGUARD_DASHBOARD_<FIELD>``.
    """

    model_config = SettingsConfigDict(env_prefix="RADGUARD_DASHBOARD_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=19080, ge=0, le=65535)
    #: ``host:port`` of the governance API (radguard.governance.v1).
    governance_target: str = "127.0.0.1:19063"
    #: ``host:port`` of the monitor service's query API (radguard.monitoring.v1).
    monitoring_target: str = "127.0.0.1:19072"
    #: Seconds a signed-in session lives without use.
    session_ttl_s: float = Field(default=1800.0, gt=0)
    #: Seconds each API call may take.
    rpc_timeout_s: float = Field(default=10.0, gt=0)
    #: Mark cookies Secure (set behind TLS).
    secure_cookies: bool = False
