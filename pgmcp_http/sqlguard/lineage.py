"""Which relations and functions return a blocked table's rows without naming it.

``BLOCKED_TABLES`` and ``ALLOWED_SCHEMAS`` name tables; their rows also come
back through a view or materialized view over them, through a partition or
inheritance child of a blocked parent, through the parent of a blocked
partition or child (reading a parent reads its children), and through a
SQL-standard function (``BEGIN ATOMIC``) whose body reads them, called
directly or from a view. PostgreSQL records each of these links in its
catalogs (a view's rewrite rule and a ``BEGIN ATOMIC`` body depend on what
they read; ``pg_inherits`` links children to parents); ``catalog/lineage.py``
reads them as :class:`Link` values, and :func:`trace` turns them into a
:class:`Lineage`: everything that reaches a blocked table, each with the path
that says why. Pure code: the links are handed in, like the SECURITY DEFINER
list.

What cannot be followed: a function whose body is a string (``AS $$ ... $$``,
every PL/pgSQL function): PostgreSQL records no dependency for what it reads.
PostgreSQL's own privileges are the control for that.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from pgmcp_http.sqlguard.policy import GuardPolicy

__all__ = ["FUNCTION", "RELATION", "Lineage", "Link", "Relation", "trace"]

Relation = tuple[str, str]
"""(schema, name) as PostgreSQL stores them, of a relation or a function."""

RELATION, FUNCTION = "relation", "function"
READS, HOLDS, PART_OF = "reads", "holds", "part of"

_Node = tuple[str, str, str]  # (kind, schema, name)


@dataclass(frozen=True)
class Link:
    """Reading ``reader`` reads rows of ``source``.

    ``how`` is ``reads`` (a view, materialized view or ``BEGIN ATOMIC``
    function over ``source``), ``holds`` (``source`` is a partition or child of
    ``reader``) or ``part of`` (``reader`` is a partition or child of
    ``source``: its rows are part of a blocked parent's). ``partition`` says
    whether the child of the pair is a declarative partition rather than an
    inheritance child, for the wording. ``reader_kind`` and ``source_kind``
    are ``relation`` or ``function``.
    """

    reader: Relation
    source: Relation
    how: str
    partition: bool = False
    reader_kind: str = RELATION
    source_kind: str = RELATION

    @property
    def reader_node(self) -> _Node:
        return (self.reader_kind, *self.reader)

    @property
    def source_node(self) -> _Node:
        return (self.source_kind, *self.source)


def _shown(node: _Node) -> str:
    kind, schema, name = node
    return f"function {schema}.{name}" if kind == FUNCTION else f"{schema}.{name}"


def _step(link: Link) -> str:
    """What ``link.reader`` does, said of it: ``reads app.secrets``, ``is a partition of app.parted``..."""
    source = _shown(link.source_node)
    if link.how == READS:
        return f"reads {source}"
    if link.how == HOLDS:
        return f"holds the rows of its {'partition' if link.partition else 'child table'} {source}"
    return f"is {'a partition' if link.partition else 'an inheritance child'} of {source}"


def _seed_reason(node: _Node, policy: GuardPolicy) -> str | None:
    """Why the relation ``node`` itself may not be read, said of it (None: it may, or it is a function)."""
    kind, schema, name = node
    if kind != RELATION:
        return None
    if not policy.schema_allowed(schema):
        return f"is in schema {schema}, which is not in ALLOWED_SCHEMAS"
    if policy.blocked_entry(schema, name) is not None:
        return "is blocked by BLOCKED_TABLES"
    return None


def _index(paths: Mapping[Relation, str]) -> Mapping[str, tuple[Relation, ...]]:
    by_name: dict[str, list[Relation]] = {}
    for found in sorted(paths):
        by_name.setdefault(found[1], []).append(found)
    return {name: tuple(found) for name, found in by_name.items()}


@dataclass(frozen=True)
class Lineage:
    """Relations (``reached``) and functions (``functions``) whose results include a blocked table's rows,
    each with the path (``app.v reads app.secrets, which is blocked by BLOCKED_TABLES``). The blocked
    tables themselves are not in it: the guard refuses them by name."""

    reached: Mapping[Relation, str] = field(default_factory=dict)
    functions: Mapping[Relation, str] = field(default_factory=dict)
    _by_name: Mapping[str, tuple[Relation, ...]] = field(init=False, repr=False, compare=False)
    _functions_by_name: Mapping[str, tuple[Relation, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Every call looks its names up here: by name, never by scanning (a catalog may hide thousands).
        object.__setattr__(self, "_by_name", _index(self.reached))
        object.__setattr__(self, "_functions_by_name", _index(self.functions))

    @property
    def hidden(self) -> frozenset[Relation]:
        return frozenset(self.reached)

    @property
    def hidden_functions(self) -> frozenset[Relation]:
        return frozenset(self.functions)

    def refusal(self, references: Iterable[tuple[str | None, str]], policy: GuardPolicy,
                functions: Iterable[tuple[str | None, str]] = ()) -> str | None:
        """Why a statement naming relations ``references`` and calling ``functions`` ((schema or None, name)
        pairs) may not run; None when it may.

        An unqualified name counts as every object of that name its search path may reach: with
        ALLOWED_SCHEMAS the path is exactly those schemas; without, it is not known here, so every schema.
        """
        for what, names, paths, by_name in (("table", references, self.reached, self._by_name),
                                             ("function", functions, self.functions, self._functions_by_name)):
            if not paths:
                continue
            for schema, name in sorted(names, key=lambda ref: (ref[0] or "", ref[1])):  # a few names
                for found, path in _matches(schema, name, paths, by_name, policy):
                    shown = f"{found[0]}.{found[1]}"
                    if schema is None:
                        return (f"{what} {name} may resolve to {shown}, which returns rows of a blocked table "
                                f"({path}); qualify the name with its schema if you mean another {what}, or "
                                "rename a CTE of this statement that has the same name")
                    return f"{what} {shown} returns rows of a blocked table: {path}"
        return None


def _matches(schema: str | None, name: str, paths: Mapping[Relation, str], by_name: Mapping[str, tuple[Relation, ...]],
             policy: GuardPolicy) -> list[tuple[Relation, str]]:
    if schema is not None:
        path = paths.get((schema, name))
        return [] if path is None else [((schema, name), path)]
    return [(found, paths[found]) for found in by_name.get(name, ())
            if not policy.allowed_schemas or found[0] in policy.allowed_schemas]


def trace(links: Iterable[Link], policy: GuardPolicy) -> Lineage:
    """Everything the ``links`` lead to from a blocked relation (or one outside ALLOWED_SCHEMAS), breadth
    first, so each path is a shortest one; relations blocked themselves are left out.

    First the relations whose own rows are blocked: the blocked ones, then their partitions and children
    (``part of`` links). Then everything that reads those (``reads`` and ``holds``): views, materialized
    views, functions, parents. ``part of`` is not followed from a parent refused for holding a blocked
    partition: its other partitions hold none of the blocked rows.
    """
    by_source: dict[_Node, list[Link]] = {}
    for link in links:
        by_source.setdefault(link.source_node, []).append(link)
    because: dict[_Node, str] = {}
    for source in sorted(by_source):
        reason = _seed_reason(source, policy)
        if reason is not None:
            because[source] = reason
    seeds = frozenset(because)
    _spread(by_source, because, deque(sorted(seeds)), follow={PART_OF})
    _spread(by_source, because, deque(sorted(because)), follow={READS, HOLDS})
    found = {node: f"{_shown(node)} {reason}" for node, reason in because.items() if node not in seeds}
    return Lineage(reached={(schema, name): path for (kind, schema, name), path in found.items() if kind == RELATION},
                   functions={(schema, name): path for (kind, schema, name), path in found.items()
                              if kind == FUNCTION})


def _spread(by_source: Mapping[_Node, list[Link]], because: dict[_Node, str], queue: deque[_Node], *,
            follow: set[str]) -> None:
    """Breadth first from ``queue`` along the links of the kinds in ``follow``, recording each new reader."""
    while queue:
        source = queue.popleft()
        for link in sorted(by_source.get(source, ()), key=lambda item: (item.reader_node, item.how)):
            if link.how in follow and link.reader_node not in because:
                because[link.reader_node] = f"{_step(link)}, which {because[source]}"
                queue.append(link.reader_node)
