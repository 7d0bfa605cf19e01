"""The import rules of DESIGN.md as functions over source text: nothing under test is imported or run.

Each ``check_*`` function takes the repository root and returns the violations it finds, each naming file
and line. Rules:

(a) ``governance/`` imports no gRPC, no Kafka client and no generated contracts (``radguard.*``).
(b) No service imports another: a module under ``services/<x>/`` may import ``services.runtime`` and
    ``services.<x>`` only. ``services/cli/`` is the operator CLI, a composition root, and may import any.
(c) Generated contracts (``radguard.*``) are imported only by the files :data:`GENERATED_CODE_USERS` allows.
(d) Nothing connects, reads the environment or parses arguments at import time.
(e) ``kernel/`` (the shared vocabulary and statistics) imports only the standard library, numpy, scipy and
    itself: everything else of radguard depends on it, so it depends on nothing of radguard's own.

Imports are collected wherever they appear (also inside functions and ``if TYPE_CHECKING:``): a lazy
import is still a dependency.
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SCANNED_ROOTS = ("services", "governance", "stack", "sim", "model_repo", "kernel")
"""Top-level folders whose Python files the rules inspect."""

GENERATED_SUFFIXES = ("_pb2.py", "_pb2_grpc.py")

GOVERNANCE_FORBIDDEN = frozenset(
    {
        # gRPC and its companions: the network edge is services/governance_api's job.
        "grpc",
        "grpc_health",
        "grpc_reflection",
        "grpc_status",
        "grpc_tools",
        # Kafka clients: publishing goes through the outbox, relayed by a service.
        "kafka",
        "aiokafka",
        "confluent_kafka",
        # Generated contracts: the domain speaks its own types.
        "radguard",
    }
)
"""Top-level packages the governance library must not import (rule a)."""

COMPOSITION_ROOT_SERVICES = frozenset({"cli"})
"""Services that wire other services together and so may import any of them (rule b)."""

GENERATED_CODE_USERS = (
    # Servicers translate protobuf <-> domain objects at the gRPC edge.
    "**/servicer*.py",
    # Consumers decode Kafka payloads into domain events.
    "**/consumer*.py",
    # Adapters (Kafka producers, gRPC clients, outbox relays) encode and decode at the process boundary.
    "**/adapters/**",
    # Each process's composition root registers its servicers on the server.
    "services/*/__main__.py",
    # The shared Kafka plumbing reads and writes message headers.
    "services/runtime/kafka*.py",
    "services/runtime/kafka/**",
    # The operator CLI is a client of every service.
    "services/cli/**",
    # Bringing up the stack, tests and benchmarks talk to the services from outside.
    "stack/**",
    "tests/**",
    "bench/**",
)
"""Where ``radguard.*`` may be imported (rule c). Globs over the path relative to the repository root:
``*`` matches within one folder or file name, ``**`` any number of folders. Widen this list deliberately,
with a comment saying which role the new files play."""

CONNECTING_CALLS = frozenset(
    {
        "connect",
        "create_pool",
        "KafkaProducer",
        "KafkaConsumer",
        "KafkaAdminClient",
        "insecure_channel",
        "secure_channel",
    }
)
"""Call names that open connections; calling any of them at import time violates rule (d)."""

ARGUMENT_PARSING_CALLS = frozenset({"parse_args", "parse_known_args"})
ENVIRONMENT_ATTRIBUTES = frozenset({"environ", "environb", "getenv"})


@dataclass(frozen=True)
class Violation:
    """One broken rule at one place.

    Attributes:
        path: File, relative to the scanned repository root.
        line: 1-based line of the offending statement or expression.
        message: Which rule, and what was found.
    """

    path: Path
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path.as_posix()}:{self.line}: {self.message}"


@dataclass(frozen=True)
class SourceFile:
    """A parsed Python file of the repository.

    Attributes:
        path: Relative to the repository root.
        module: Dotted module name (a package's ``__init__.py`` is the package itself).
        tree: Its syntax tree.
    """

    path: Path
    module: str
    tree: ast.Module

    @property
    def package(self) -> str:
        """The package relative imports in this file start from."""
        return self.module if self.path.name == "__init__.py" else self.module.rpartition(".")[0]


@dataclass(frozen=True)
class ImportedName:
    """A module named by an import statement, resolved to its absolute dotted name."""

    name: str
    line: int


def source_files(root: Path, folders: tuple[str, ...] = SCANNED_ROOTS) -> list[SourceFile]:
    """Parses the hand-written Python files under the given top-level folders.

    Args:
        root: Repository root.
        folders: Top-level folders to scan; missing ones are skipped.

    Returns:
        The files sorted by path; generated protobuf modules and caches are left out.

    Raises:
        SyntaxError: A file does not parse.
    """
    found: list[SourceFile] = []
    for folder in folders:
        base = root / folder
        if not base.is_dir():
            continue
        for path in sorted(base.rglob("*.py")):
            relative = path.relative_to(root)
            if "__pycache__" in relative.parts or path.name.endswith(GENERATED_SUFFIXES):
                continue
            parts = relative.with_suffix("").parts
            module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found.append(SourceFile(relative, module, ast.parse(path.read_text(), filename=str(path))))
    return found


def imported_names(source: SourceFile) -> Iterator[ImportedName]:
    """Yields every module an import statement in the file names, relative imports made absolute.

    ``from a.b import c`` yields both ``a.b`` and ``a.b.c``, because ``c`` may be a submodule.
    """
    for node in ast.walk(source.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield ImportedName(alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute_module(source, node)
            if base:
                yield ImportedName(base, node.lineno)
            for alias in node.names:
                if alias.name != "*":
                    yield ImportedName(f"{base}.{alias.name}" if base else alias.name, node.lineno)


def _absolute_module(source: SourceFile, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    anchor = source.package.split(".") if source.package else []
    # One dot is the current package; each further dot climbs one level.
    anchor = anchor[: len(anchor) - (node.level - 1)] if node.level > 1 else anchor
    return ".".join([*anchor, node.module] if node.module else anchor)


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def check_governance_imports(root: Path) -> list[Violation]:
    """Rule (a): the governance library imports no gRPC, Kafka or generated contract modules.

    Args:
        root: Repository root.

    Returns:
        One violation per offending import.
    """
    violations: list[Violation] = []
    for source in source_files(root, ("governance",)):
        reported: set[int] = set()
        for imported in imported_names(source):
            if imported.name.split(".")[0] in GOVERNANCE_FORBIDDEN and imported.line not in reported:
                reported.add(imported.line)
                violations.append(
                    Violation(
                        source.path,
                        imported.line,
                        f"governance must not depend on gRPC, Kafka or generated contracts: imports {imported.name}",
                    )
                )
    return violations


KERNEL_ALLOWED = frozenset({"kernel", "numpy", "scipy"})
"""Top-level packages ``kernel/`` may import besides the standard library (rule e)."""


def check_kernel_imports(root: Path) -> list[Violation]:
    """Rule (e): the kernel imports only the standard library, numpy, scipy and its own modules.

    Args:
        root: Repository root.

    Returns:
        One violation per offending import.
    """
    violations: list[Violation] = []
    for source in source_files(root, ("kernel",)):
        reported: set[int] = set()
        for imported in imported_names(source):
            top = imported.name.split(".")[0]
            if top in KERNEL_ALLOWED or top in sys.stdlib_module_names or imported.line in reported:
                continue
            reported.add(imported.line)
            violations.append(
                Violation(
                    source.path,
                    imported.line,
                    f"kernel may import only the standard library, numpy and scipy: imports {imported.name}",
                )
            )
    return violations


def check_service_isolation(root: Path) -> list[Violation]:
    """Rule (b): a service imports only its own package and ``services.runtime``.

    Args:
        root: Repository root.

    Returns:
        One violation per import of another service's package.
    """
    violations: list[Violation] = []
    for source in source_files(root, ("services",)):
        if len(source.path.parts) < 3:  # files directly in services/ belong to no service
            continue
        owner = source.path.parts[1]
        if owner in COMPOSITION_ROOT_SERVICES:
            continue
        allowed = ", ".join(sorted({f"services.{owner}", "services.runtime"}))
        reported: set[tuple[int, str]] = set()
        for imported in imported_names(source):
            parts = imported.name.split(".")
            if len(parts) < 2 or parts[0] != "services" or parts[1] in {owner, "runtime"}:
                continue
            if (imported.line, parts[1]) in reported:
                continue
            reported.add((imported.line, parts[1]))
            violations.append(
                Violation(
                    source.path,
                    imported.line,
                    f"service {owner!r} must not import another service: imports {imported.name} (allowed: {allowed})",
                )
            )
    return violations


def _glob_pattern(glob: str) -> re.Pattern[str]:
    pieces: list[str] = []
    segments = glob.split("/")
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment == "**":
            pieces.append(".+" if last else "(?:[^/]+/)*")
            continue
        pieces.append("".join("[^/]*" if char == "*" else re.escape(char) for char in segment))
        if not last:
            pieces.append("/")
    return re.compile("".join(pieces))


_GENERATED_CODE_USER_PATTERNS = tuple(_glob_pattern(glob) for glob in GENERATED_CODE_USERS)


def may_import_generated_code(path: Path) -> bool:
    """Tells whether a file (relative to the repository root) may import ``radguard.*`` (rule c)."""
    text = path.as_posix()
    return any(pattern.fullmatch(text) for pattern in _GENERATED_CODE_USER_PATTERNS)


def check_generated_code_users(root: Path) -> list[Violation]:
    """Rule (c): only servicers, consumers, adapters and the other listed files import ``radguard.*``.

    Args:
        root: Repository root.

    Returns:
        One violation per import of generated code from a file :data:`GENERATED_CODE_USERS` does not allow.
    """
    violations: list[Violation] = []
    for source in source_files(root):
        if may_import_generated_code(source.path):
            continue
        reported: set[int] = set()
        for imported in imported_names(source):
            if _within(imported.name, "radguard") and imported.line not in reported:
                reported.add(imported.line)
                violations.append(
                    Violation(
                        source.path,
                        imported.line,
                        f"generated contracts are for servicers, consumers and adapters only: imports "
                        f"{imported.name} (see GENERATED_CODE_USERS)",
                    )
                )
    return violations


def check_import_time_effects(root: Path) -> list[Violation]:
    """Rule (d): module-level code neither connects, nor reads the environment, nor parses arguments.

    Import-time code is everything Python runs when it imports the module: top-level statements, class
    bodies, decorators and default argument values. Function bodies, lambda bodies and the block under
    ``if __name__ == "__main__":`` are not.

    Args:
        root: Repository root.

    Returns:
        One violation per offending expression.
    """
    violations: list[Violation] = []
    for source in source_files(root):
        scanner = _ImportTimeScanner(source)
        scanner.scan()
        violations.extend(scanner.violations)
    return violations


class _ImportTimeScanner(ast.NodeVisitor):
    """Walks only the code that runs at import time and records rule (d) violations."""

    def __init__(self, source: SourceFile) -> None:
        self.source = source
        self.violations: list[Violation] = []
        self.os_aliases: set[str] = set()
        self.sys_aliases: set[str] = set()
        self.environment_names: set[str] = set()  # names bound by `from os import environ/getenv`
        self.argv_names: set[str] = set()  # names bound by `from sys import argv`
        self.typer_apps: set[str] = set()  # module-level names bound to typer.Typer(...)
        self._collect_bindings()

    def scan(self) -> None:
        for statement in self.source.tree.body:
            self.visit(statement)

    def _collect_bindings(self) -> None:
        for node in ast.walk(self.source.tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name in {"os", "sys"}:
                        bound = alias.asname or alias.name
                        (self.os_aliases if alias.name == "os" else self.sys_aliases).add(bound)
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                for alias in node.names:
                    bound = alias.asname or alias.name
                    if node.module == "os" and alias.name in ENVIRONMENT_ATTRIBUTES:
                        self.environment_names.add(bound)
                    elif node.module == "sys" and alias.name == "argv":
                        self.argv_names.add(bound)
        for statement in self.source.tree.body:
            if isinstance(statement, ast.Assign | ast.AnnAssign) and _calls_named(statement.value, "Typer"):
                targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
                self.typer_apps.update(target.id for target in targets if isinstance(target, ast.Name))

    def _report(self, node: ast.expr, what: str) -> None:
        self.violations.append(Violation(self.source.path, node.lineno, f"at import time: {what}"))

    # Scopes whose bodies do not run at import time: visit only what is evaluated when they are defined.
    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._visit_definition(node)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self._visit_definition(node)

    def _visit_definition(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        for decorator in node.decorator_list:
            self.visit(decorator)
        self._visit_defaults(node.args)

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self._visit_defaults(node.args)

    def _visit_defaults(self, arguments: ast.arguments) -> None:
        for default in [*arguments.defaults, *arguments.kw_defaults]:
            if default is not None:
                self.visit(default)

    def visit_If(self, node: ast.If) -> None:
        if _is_main_guard(node.test):
            for statement in node.orelse:
                self.visit(statement)
            return
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if isinstance(node.value, ast.Name):
            owner = node.value.id
            if owner in self.os_aliases and node.attr in ENVIRONMENT_ATTRIBUTES:
                self._report(node, f"reads the environment ({owner}.{node.attr})")
            elif owner in self.sys_aliases and node.attr == "argv":
                self._report(node, f"reads the command line ({owner}.argv)")
        self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load):
            if node.id in self.environment_names:
                self._report(node, f"reads the environment ({node.id})")
            elif node.id in self.argv_names:
                self._report(node, f"reads the command line ({node.id})")

    def visit_Call(self, node: ast.Call) -> None:
        name = _call_name(node)
        if name in CONNECTING_CALLS:
            self._report(node, f"connects ({name}())")
        elif name in ARGUMENT_PARSING_CALLS:
            self._report(node, f"parses arguments ({name}())")
        elif isinstance(node.func, ast.Name) and node.func.id in self.typer_apps:
            self._report(node, f"runs the typer app ({node.func.id}())")
        elif name == "run" and isinstance(node.func, ast.Attribute) and _is_name(node.func.value, "typer"):
            self._report(node, "runs a typer command (typer.run())")
        self.generic_visit(node)


def _call_name(node: ast.Call) -> str:
    if isinstance(node.func, ast.Name):
        return node.func.id
    if isinstance(node.func, ast.Attribute):
        return node.func.attr
    return ""


def _calls_named(node: ast.expr | None, name: str) -> bool:
    return isinstance(node, ast.Call) and _call_name(node) == name


def _is_name(node: ast.expr, name: str) -> bool:
    return isinstance(node, ast.Name) and node.id == name


def _is_main_guard(test: ast.expr) -> bool:
    """True for ``__name__ == "__main__"`` (either operand order)."""
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)):
        return False
    sides = [test.left, test.comparators[0]]
    has_name = any(_is_name(side, "__name__") for side in sides)
    has_main = any(isinstance(side, ast.Constant) and side.value == "__main__" for side in sides)
    return has_name and has_main
