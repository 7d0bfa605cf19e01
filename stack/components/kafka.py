"""Apache Kafka 4.x as one combined broker+controller (KRaft) node on loopback.

The jars come from Maven Central through ``stack/kafka/pom.xml`` and are cached outside the
clone, keyed by the pom's hash.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import re
import subprocess
import uuid
from pathlib import Path

from stack.components.base import Component, require_tool
from stack.processes import ProcessRecord, StackError, port_open, spawn
from stack.topics import TOPICS

_LOG4J2_PROPERTIES = """\
status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.stdout.ref = STDOUT
logger.server.name = kafka.server.KafkaServer
logger.server.level = INFO
logger.broker.name = kafka.server.BrokerServer
logger.broker.level = INFO
"""


def new_cluster_id() -> str:
    """16 random bytes, URL-safe base64 without padding, never starting with '-'."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


class Kafka(Component):
    """A single KRaft node (process.roles=broker,controller)."""

    name = "kafka"

    @property
    def config_path(self) -> Path:
        return self.home / "server.properties"

    def ports(self) -> dict[str, int]:
        return {
            "RADGUARD_STACK_KAFKA_PORT": self.settings.kafka_port,
            "RADGUARD_STACK_KAFKA_CONTROLLER_PORT": self.settings.kafka_controller_port,
        }

    def check_prerequisites(self) -> None:
        java = require_tool("java", "apt-get install -y openjdk-17-jre-headless")
        out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)
        match = re.search(r'version "(\d+)', out.stderr + out.stdout)
        if match and int(match.group(1)) < 17:
            raise StackError(
                f"Kafka 4 needs Java 17 or newer, found {match.group(1)}: "
                "install it with `apt-get install -y openjdk-17-jre-headless`"
            )
        if not self._libs_present():
            require_tool("mvn", "apt-get install -y maven")

    def _libs_present(self) -> bool:
        libs = self.settings.kafka_libs
        return (libs / ".complete").exists() and any(libs.glob("kafka_2.13-*.jar"))

    def resolve_libs(self) -> Path:
        """Fill the jar cache with Maven (once per pom hash)."""
        libs = self.settings.kafka_libs
        if self._libs_present():
            return libs
        libs.mkdir(parents=True, exist_ok=True)
        cmd = [
            "mvn",
            "-B",
            "-q",
            "-f",
            str(self.settings.kafka_pom),
            "org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={libs}",
        ]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            tail = (result.stdout + result.stderr).strip().splitlines()[-3:]
            raise StackError("resolving Kafka jars with Maven failed: " + " | ".join(tail))
        (libs / ".complete").write_text("ok\n")
        return libs

    def prepare(self) -> None:
        self.resolve_libs()
        data = self.home / "data"
        self.home.mkdir(parents=True, exist_ok=True)
        host = self.settings.host
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{host}:{self.settings.kafka_controller_port}",
            "listeners": f"PLAINTEXT://{host}:{self.settings.kafka_port},"
            f"CONTROLLER://{host}:{self.settings.kafka_controller_port}",
            "advertised.listeners": f"PLAINTEXT://{host}:{self.settings.kafka_port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(data),
            "num.partitions": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "6",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "6",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "false",
            "log.retention.hours": "168",
        }
        self.config_path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        (self.home / "log4j2.properties").write_text(_LOG4J2_PROPERTIES)
        if not (data / "meta.properties").exists():
            cluster_file = self.home / "cluster.id"
            if not cluster_file.exists():
                cluster_file.write_text(new_cluster_id())
            cmd = [
                *self._java(),
                "kafka.tools.StorageTool",
                "format",
                "-t",
                cluster_file.read_text().strip(),
                "-c",
                str(self.config_path),
                "--ignore-formatted",
            ]
            result = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if result.returncode != 0:
                tail = (result.stdout + result.stderr).strip().splitlines()[-2:]
                raise StackError("formatting Kafka storage failed: " + " | ".join(tail))

    def _java(self) -> list[str]:
        heap = self.settings.kafka_heap
        return [
            "java",
            f"-Xms{heap}",
            f"-Xmx{heap}",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.home / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={self.layout.logs}",
            "-cp",
            f"{self.settings.kafka_libs}/*",
        ]

    def start(self) -> ProcessRecord:
        return spawn(
            self.name,
            [*self._java(), "kafka.Kafka", str(self.config_path)],
            log_path=self.layout.log(self.name),
            marker=str(self.config_path),
        )

    def is_ready(self) -> bool:
        if not port_open(self.settings.host, self.settings.kafka_port):
            return False
        from kafka import KafkaAdminClient
        from kafka.errors import KafkaError

        logging.getLogger("kafka").setLevel(logging.CRITICAL)
        try:
            admin = KafkaAdminClient(
                bootstrap_servers=self.settings.kafka_bootstrap, request_timeout_ms=3000, bootstrap_timeout_ms=3000
            )
        except (KafkaError, OSError, ValueError):
            return False
        try:
            admin.list_topics()
            return True
        except (KafkaError, OSError):
            return False
        finally:
            admin.close()

    def after_ready(self) -> list[str]:
        from kafka import KafkaAdminClient
        from kafka.admin import NewTopic
        from kafka.errors import TopicAlreadyExistsError

        admin = KafkaAdminClient(bootstrap_servers=self.settings.kafka_bootstrap, request_timeout_ms=10000)
        try:
            existing = set(admin.list_topics())
            missing = [t for t in TOPICS if t.name not in existing]
            if missing:
                with contextlib.suppress(TopicAlreadyExistsError):
                    admin.create_topics([NewTopic(t.name, t.partitions, 1, topic_configs=t.configs) for t in missing])
            return [f"created topic {t.name} ({t.partitions} partitions)" for t in missing]
        finally:
            admin.close()

    def version(self) -> str:
        jars = sorted(self.settings.kafka_libs.glob("kafka_2.13-*.jar"))
        if not jars:
            return "unknown"
        return jars[-1].name.removeprefix("kafka_2.13-").removesuffix(".jar")
