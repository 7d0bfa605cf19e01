"""DESIGN.md's import rules hold for the repository, and each rule catches what it exists to catch."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.architecture.import_rules import (
    Violation,
    check_generated_code_users,
    check_governance_imports,
    check_import_time_effects,
    check_kernel_imports,
    check_service_isolation,
    imported_names,
    may_import_generated_code,
    source_files,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
Rule = Callable[[Path], list[Violation]]
RULES: dict[str, Rule] = {
    "governance imports": check_governance_imports,
    "service isolation": check_service_isolation,
    "generated code users": check_generated_code_users,
    "import-time effects": check_import_time_effects,
    "kernel imports": check_kernel_imports,
}


def _write(root: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
    return root


def _report(violations: list[Violation]) -> list[str]:
    return [str(violation) for violation in violations]


@pytest.mark.parametrize("rule", sorted(RULES))
def test_the_repository_keeps_the_rule(rule: str) -> None:
    assert _report(RULES[rule](REPO_ROOT)) == []


def test_the_scan_sees_the_repository_and_skips_generated_modules() -> None:
    scanned = {source.path.as_posix() for source in source_files(REPO_ROOT, ("services", "governance"))}
    assert "services/__init__.py" in scanned
    assert "governance/__init__.py" in scanned
    contracts = {source.path.name for source in source_files(REPO_ROOT, ("proto",))}
    assert "generate.py" in contracts
    assert not any(name.endswith(("_pb2.py", "_pb2_grpc.py")) for name in contracts)


def test_governance_rule_reports_grpc_kafka_and_contracts(tmp_path: Path) -> None:
    root = _write(
        tmp_path,
        {
            "governance/__init__.py": "",
            "governance/domain.py": """
                import dataclasses
                import grpc.aio
                from kafka import KafkaProducer


                def load():
                    from radguard.governance.v1 import governance_pb2
                    return governance_pb2
            """,
            "governance/adapters/postgres.py": "import asyncpg\n",
        },
    )
    assert _report(check_governance_imports(root)) == [
        "governance/domain.py:2: governance must not depend on gRPC, Kafka or generated contracts: imports grpc.aio",
        "governance/domain.py:3: governance must not depend on gRPC, Kafka or generated contracts: imports kafka",
        "governance/domain.py:7: governance must not depend on gRPC, Kafka or generated contracts: "
        "imports radguard.governance.v1",
    ]


def test_service_rule_reports_cross_service_imports_also_relative_ones(tmp_path: Path) -> None:
    root = _write(
        tmp_path,
        {
            "services/__init__.py": "",
            "services/feedback/__init__.py": "",
            "services/feedback/handlers.py": """
                from services.runtime.errors import NotFound
                from services.feedback.ports import Ledger
                from services.gateway.routing import RouteCache
                from .. import monitors
                from ..governance_api import servicer
            """,
            "services/runtime/server.py": "import services.gateway\n",
            "services/cli/main.py": "from services.gateway import settings\nfrom services.monitors import drift\n",
        },
    )
    assert _report(check_service_isolation(root)) == [
        "services/feedback/handlers.py:3: service 'feedback' must not import another service: "
        "imports services.gateway.routing (allowed: services.feedback, services.runtime)",
        "services/feedback/handlers.py:4: service 'feedback' must not import another service: "
        "imports services.monitors (allowed: services.feedback, services.runtime)",
        "services/feedback/handlers.py:5: service 'feedback' must not import another service: "
        "imports services.governance_api (allowed: services.feedback, services.runtime)",
        "services/runtime/server.py:1: service 'runtime' must not import another service: "
        "imports services.gateway (allowed: services.runtime)",
    ]


def test_generated_code_rule_allows_the_edge_and_reports_the_core(tmp_path: Path) -> None:
    contract_import = "from radguard.inference.v1 import inference_pb2\n"
    root = _write(
        tmp_path,
        {
            "services/gateway/servicer.py": contract_import,
            "services/gateway/adapters/kafka_events.py": contract_import,
            "services/monitors/drift/consumer.py": contract_import,
            "services/gateway/__main__.py": contract_import,
            "services/runtime/kafka.py": contract_import,
            "services/cli/commands/routes.py": contract_import,
            "stack/smoke.py": contract_import,
            "services/gateway/handlers.py": "import radguard.common.v1.common_pb2 as common\n",
            "services/monitors/drift/calculator.py": '"""Drift statistics."""\n\n' + contract_import,
            "sim/hospital.py": "from radguard.common.v1 import common_pb2\n",
        },
    )
    assert _report(check_generated_code_users(root)) == [
        "services/gateway/handlers.py:1: generated contracts are for servicers, consumers and adapters only: "
        "imports radguard.common.v1.common_pb2 (see GENERATED_CODE_USERS)",
        "services/monitors/drift/calculator.py:3: generated contracts are for servicers, consumers and adapters "
        "only: imports radguard.inference.v1 (see GENERATED_CODE_USERS)",
        "sim/hospital.py:1: generated contracts are for servicers, consumers and adapters only: "
        "imports radguard.common.v1 (see GENERATED_CODE_USERS)",
    ]


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("services/feedback/servicer.py", True),
        ("services/feedback/servicer_v2.py", True),
        ("services/monitors/ledger/consumer_group.py", True),
        ("services/gateway/adapters/triton.py", True),
        ("services/gateway/adapters/kafka/producer.py", True),
        ("services/runtime/kafka_headers.py", True),
        ("services/cli/main.py", True),
        ("services/feedback/__main__.py", True),
        ("services/feedback/servicers/helpers.py", False),
        ("services/runtime/server.py", False),
        ("services/gateway/routing.py", False),
        ("services/gateway/sub/__main__.py", False),
        ("governance/adapters_registry.py", False),
        ("sim/hospital.py", False),
    ],
)
def test_generated_code_users_globs(path: str, allowed: bool) -> None:
    assert may_import_generated_code(Path(path)) is allowed


def test_import_time_rule_reports_connections_environment_and_arguments(tmp_path: Path) -> None:
    root = _write(
        tmp_path,
        {
            "services/gateway/settings.py": """
                import os
                import sys as system
                from os import getenv as env_var

                import argparse
                import grpc
                import typer
                from kafka import KafkaProducer

                PORT = int(os.environ.get("PORT", "0"))
                LEVEL = env_var("LEVEL")
                FIRST = system.argv[1:]
                ARGS = argparse.ArgumentParser().parse_args()
                CHANNEL = grpc.aio.insecure_channel("127.0.0.1:1")
                PRODUCER = KafkaProducer(bootstrap_servers="127.0.0.1:9092")
                app = typer.Typer()


                class Settings:
                    url = os.getenv("URL")

                    def read(self):
                        return os.environ["URL"]


                def handler(pool=create_pool("dsn")):
                    return pool


                app()
            """,
        },
    )
    assert _report(check_import_time_effects(root)) == [
        "services/gateway/settings.py:10: at import time: reads the environment (os.environ)",
        "services/gateway/settings.py:11: at import time: reads the environment (env_var)",
        "services/gateway/settings.py:12: at import time: reads the command line (system.argv)",
        "services/gateway/settings.py:13: at import time: parses arguments (parse_args())",
        "services/gateway/settings.py:14: at import time: connects (insecure_channel())",
        "services/gateway/settings.py:15: at import time: connects (KafkaProducer())",
        "services/gateway/settings.py:20: at import time: reads the environment (os.getenv)",
        "services/gateway/settings.py:26: at import time: connects (create_pool())",
        "services/gateway/settings.py:30: at import time: runs the typer app (app())",
    ]


def test_import_time_rule_leaves_functions_lambdas_and_the_main_guard_alone(tmp_path: Path) -> None:
    root = _write(
        tmp_path,
        {
            "services/gateway/__main__.py": """
                import asyncio
                import os
                import sys

                import asyncpg
                import typer

                app = typer.Typer()
                DEFAULT_URL = lambda: os.environ["URL"]  # noqa: E731


                async def serve(argv: list[str]) -> None:
                    pool = await asyncpg.create_pool(os.environ["DSN"])
                    await pool.close()


                @app.command()
                def main() -> None:
                    asyncio.run(serve(sys.argv))


                if __name__ == "__main__":
                    app()
                    typer.run(main)
            """,
            "stack/entry.py": """
                import typer

                if "__main__" == __name__:
                    typer.run(print)
                else:
                    typer.run(print)
            """,
        },
    )
    assert _report(check_import_time_effects(root)) == [
        "stack/entry.py:6: at import time: runs a typer command (typer.run())",
    ]


def test_relative_imports_resolve_against_the_package(tmp_path: Path) -> None:
    root = _write(
        tmp_path,
        {
            "services/gateway/__init__.py": "from . import servicer\n",
            "services/gateway/adapters/triton.py": "from ..routing import RouteCache\nfrom ...runtime import errors\n",
        },
    )
    by_path = {source.path.as_posix(): [name.name for name in imported_names(source)] for source in source_files(root)}
    assert by_path == {
        "services/gateway/__init__.py": ["services.gateway", "services.gateway.servicer"],
        "services/gateway/adapters/triton.py": [
            "services.gateway.routing",
            "services.gateway.routing.RouteCache",
            "services.runtime",
            "services.runtime.errors",
        ],
    }


def test_kernel_rule_reports_radguard_and_third_party_imports(tmp_path: Path) -> None:
    root = _write(
        tmp_path,
        {
            "kernel/__init__.py": "",
            "kernel/good.py": """
                import math
                from collections.abc import Sequence
                import numpy as np
                from scipy import stats
                from kernel import vocabulary
                from . import good
            """,
            "kernel/bad.py": """
                from services.monitors.core import Window
                import pandas
                from governance.domain import gates
            """,
        },
    )
    assert _report(check_kernel_imports(root)) == [
        "kernel/bad.py:1: kernel may import only the standard library, numpy and scipy: imports services.monitors.core",
        "kernel/bad.py:2: kernel may import only the standard library, numpy and scipy: imports pandas",
        "kernel/bad.py:3: kernel may import only the standard library, numpy and scipy: imports governance.domain",
    ]
