"""The import architecture (DESIGN.md): imports run one way, down the layers below, and there is
no import cycle, lazy imports included.

Every module of tokens/ and tokenserver/ (migrations aside) is parsed, not imported: each import
of a project module counts, at the top of a file or inside a function. `from tokens import x`
is an import of the module tokens.x when x is a module, of tokens itself otherwise. A dotted
path in settings or passed to import_string is configuration, not an import, and is not read.
"""

import ast
from collections import deque
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("tokenserver", "tokens")


class Layer(NamedTuple):
    name: str
    reason: str
    modules: set[str]


# Highest first: a module may import modules of its own layer and of the layers below it, never
# of one above. "x.*" is the package x and every module under it. A module of tokens/ or
# tokenserver/ missing here fails the test: place it by what it is.
LAYERS = (
    Layer(
        "project",
        "settings, the root URLconf, the server entry points, the database backends ENGINE names",
        {
            "tokenserver",
            "tokenserver.settings",
            "tokenserver.urls",
            "tokenserver.wsgi",
            "tokenserver.asgi",
            "tokenserver.databases.*",
        },
    ),
    Layer(
        "app wiring",
        "what Django loads by name: URLs, app configs, admin site and registrations, commands, the"
        " signal receivers the app config connects",
        {
            "tokens.urls",
            "tokens.apps",
            "tokens.admin",
            "tokens.admin_site",
            "tokens.management.*",
            "tokens.receivers",
        },
    ),
    Layer(
        "model admins",
        "one admin per model, registered by tokens.admin (a token's page shows channel events)",
        {
            "tokens.admin.issued_tokens",
            "tokens.admin.channel_events",
            "tokens.admin.identities",
            "tokens.admin.channel_rules",
            "tokens.admin.users",
            "tokens.admin.moderation",
            "tokens.admin.suspect_joins",
        },
    ),
    Layer(
        "admin building blocks",
        "what model admins build on: mixin, filters, paginator, tool pages, template tags",
        {"tokens.admin.base", "tokens.admin.views", "tokens.admin.presence", "tokens.templatetags.*"},
    ),
    Layer(
        "HTTP endpoints",
        "what answers a request: the API views, the token endpoints and their bodies, the NCS webhook,"
        " request guards",
        {
            "tokens.views",
            "tokens.channel_views",
            "tokens.joinpath.views",
            "tokens.joinpath.mount",
            "tokens.joinpath.outputs",
            "tokens.webhooks",
            "tokens.middleware",
        },
    ),
    Layer(
        "HTTP plug-ins",
        "what views and Django call around a request (shapes, auth, throttles...), never a view",
        {
            "tokens.serializers",
            "tokens.joinpath.inputs",
            "tokens.joinpath.authentication",
            "tokens.joinpath.budget",
            "tokens.backends",
            "tokens.parsers",
            "tokens.schema",
            "tokens.reporting",
        },
    ),
    Layer(
        "services",
        "business rules and transactions, read-only lookups: for views, admin and commands alike;"
        " the tasks the worker runs (moderation at Agora)",
        {"tokens.services.*", "tokens.selectors", "tokens.tasks"},
    ),
    Layer(
        "domain",
        "what services apply: models, the join path's SQL, policies, metrics, Agora's REST API,"
        " their settings' checks",
        {
            "tokens.models",
            "tokens.joinpath.statements",
            "tokens.policies",
            "tokens.metrics",
            "tokens.checks",
            "tokens.agora_rest.*",
        },
    ),
    Layer(
        "leaves",
        "shared vocabulary, pure functions, no ORM: engine, NCS, input rules, errors, caller, credentials",
        {
            "tokens",
            "tokens.joinpath",
            "tokens.choices",
            "tokens.agora",
            "tokens.ncs",
            "tokens.validators",
            "tokens.exceptions",
            "tokens.clients",
            "tokens.credentials",
            "tokens.signals",
        },
    ),
)


def project_modules() -> dict[str, Path]:
    """Every module of the project's packages by dotted name, migrations aside."""
    modules = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if "migrations" in parts:
                continue
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """module -> the project modules it imports anywhere in its file."""

    def nearest(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                targets.update(nearest(alias.name) for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the package, one level up per extra dot
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, *filter(None, [node.module])])
                targets.update(nearest(f"{base}.{alias.name}") for alias in node.names)
        graph[name] = targets - {None, name}
    return graph


def placer(layers):
    """A function from a module to the positions (0: the top) of the layers that name it."""
    entries = [(m, i) for i, layer in enumerate(layers) for m in layer.modules]

    def place(module: str) -> list[int]:
        return sorted(
            {i for m, i in entries if m == module or (m.endswith(".*") and f"{module}.".startswith(m[:-1]))}
        )

    return place


def misplaced(modules, layers) -> list[str]:
    """Modules the table leaves out or names twice, and entries that name no module."""
    place = placer(layers)
    problems = [f"{m}: in no layer of LAYERS" for m in sorted(modules) if not place(m)]
    problems += [f"{m}: in more than one layer" for m in sorted(modules) if len(place(m)) > 1]
    for layer in layers:
        for entry in sorted(layer.modules):
            stem = entry.removesuffix(".*")
            if not any(m == stem or m.startswith(stem + ".") for m in modules):
                problems.append(f"{entry}: in LAYERS but no such module")
    return problems


def upward_imports(graph: dict[str, set[str]], layers) -> list[tuple[str, str, str, str]]:
    """(importer, its layer, imported, its layer) for each import of a module in a higher layer;
    modules in no layer, or in two, are misplaced()'s to report."""
    place = placer(layers)
    found = []
    for importer in sorted(graph):
        for imported in sorted(graph[importer]):
            here, there = place(importer), place(imported)
            if len(here) == len(there) == 1 and there[0] < here[0]:
                found.append((importer, layers[here[0]].name, imported, layers[there[0]].name))
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected group of modules, as the modules in import order, the
    first repeated at the end: [a, b, c, a] when a imports b, b imports c and c imports a."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(node):  # Tarjan's algorithm; a project's modules are few enough to recurse
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == node:
                    break
            groups.append(group)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    found = []
    for group in groups:
        start = min(group)
        if len(group) == 1 and start not in graph.get(start, ()):
            continue
        # The shortest way back to the start within the group (breadth first).
        came_from, queue = {}, deque([start])
        while queue:
            node = queue.popleft()
            if start in graph.get(node, ()):
                path = [node]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                found.append([*reversed(path), start])
                break
            for nxt in sorted(graph.get(node, ()) & group):
                if nxt not in came_from and nxt != start:
                    came_from[nxt] = node
                    queue.append(nxt)
    return sorted(found)


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    """The modules `start` imports, directly or through others."""
    seen, todo = set(), [start]
    while todo:
        for nxt in graph.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


MODULES = project_modules()
GRAPH = import_graph(MODULES)


# --- the project ----------------------------------------------------------------------------


def test_every_module_is_in_exactly_one_layer():
    problems = misplaced(MODULES, LAYERS)
    assert problems == [], "; ".join(problems)


def test_no_module_imports_one_in_a_layer_above_it():
    found = upward_imports(GRAPH, LAYERS)
    assert found == [], "upward imports: " + "; ".join(
        f"{a} ({la}) imports {b} ({lb})" for a, la, b, lb in found
    )


def test_there_is_no_import_cycle_lazy_imports_included():
    found = cycles(GRAPH)
    assert found == [], "import cycles: " + "; ".join(" -> ".join(cycle) for cycle in found)


def test_the_graph_counts_lazy_imports_and_modules_named_by_a_from_import():
    assert "tokens.checks" in GRAPH["tokens.apps"]  # inside AppConfig.ready()
    assert "tokens.agora" in GRAPH["tokens.admin.base"]  # from tokens import agora
    assert "tokens.models" in GRAPH["tokens.admin.identities"]  # from tokens.models import ...
    assert "tokens.admin.views" in GRAPH["tokens.admin.issued_tokens"]  # from tokens.admin import views
    assert "tokens.admin" not in GRAPH["tokens.admin.issued_tokens"]


# --- the checker itself, on made-up graphs -----------------------------------------------------

SYNTHETIC_LAYERS = (
    Layer("top", "", {"app.urls"}),
    Layer("middle", "", {"app.views", "app.forms"}),
    Layer("bottom", "", {"app.models"}),
)


def test_the_checker_reports_a_cycle_with_its_modules_in_order():
    graph = {
        "app.views": {"app.forms"},
        "app.forms": {"app.models"},
        "app.models": {"app.views"},  # closes app.views -> app.forms -> app.models
        "app.urls": {"app.views"},  # imports into the cycle, is not on it
        "app.alone": {"app.alone"},  # imports itself
    }
    assert cycles(graph) == [
        ["app.alone", "app.alone"],
        ["app.forms", "app.models", "app.views", "app.forms"],
    ]
    graph["app.models"] = set()
    assert cycles(graph) == [["app.alone", "app.alone"]]


def test_the_checker_reports_an_upward_import_and_allows_down_and_same_layer_ones():
    graph = {
        "app.urls": {"app.views"},  # down
        "app.views": {"app.forms", "app.models"},  # same layer, down
        "app.models": {"app.urls"},  # up two layers
    }
    assert upward_imports(graph, SYNTHETIC_LAYERS) == [("app.models", "bottom", "app.urls", "top")]


def test_the_checker_reports_modules_left_out_placed_twice_or_not_there():
    layers = (
        Layer("top", "", {"app.urls", "app.gone"}),
        Layer("bottom", "", {"app.models", "app.urls", "lib.*"}),
    )
    modules = {"app.urls": None, "app.models": None, "app.new": None, "lib": None, "lib.x": None}
    assert misplaced(modules, layers) == [
        "app.new: in no layer of LAYERS",
        "app.urls: in more than one layer",
        "app.gone: in LAYERS but no such module",
    ]
