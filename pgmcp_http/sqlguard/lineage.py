"""Which relations read a blocked table without naming it: views, materialized views, partitions, parents.

``BLOCKED_TABLES`` and ``ALLOWED_SCHEMAS`` name tables; their rows also come
back through a view or materialized view over them, through a partition or
inheritance child of a blocked parent, and through the parent of a blocked
partition or child (reading a parent reads its children). PostgreSQL records
each of these links in its catalogs (a view's rewrite rule depends on what it
reads; ``pg_inherits`` links children to parents); ``catalog/lineage.py``
reads them as :class:`Link` values, and :func:`trace` turns them into a
:class:`Lineage`: every relation that reaches a blocked one, each with the
path that says why. Pure code: the links are handed in, like the SECURITY
DEFINER list.

What cannot be followed: a function whose body reads a table (its body is
text to PostgreSQL, recorded nowhere as a dependency). PostgreSQL's own
privileges are the control for that.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from pgmcp_http.sqlguard.policy import GuardPolicy

__all__ = ["Lineage", "Link", "Relation", "trace"]

Relation = tuple[str, str]
"""(schema, name) as PostgreSQL stores them."""

READS, HOLDS, PART_OF = "reads", "holds", "part of"


@dataclass(frozen=True)
class Link:
    """Reading ``reader`` reads rows of ``source``.

    ``how`` is ``reads`` (a view or materialized view over ``source``),
    ``holds`` (``source`` is a partition or child of ``reader``) or ``part of``
    (``reader`` is a partition or child of ``source``: its rows are part of a
    blocked parent's). ``partition`` says whether the child of the pair is a
    declarative partition rather than an inheritance child, for the wording.
    """

    reader: Relation
    source: Relation
    how: str
    partition: bool = False


def _shown(relation: Relation) -> str:
    schema, name = relation
    return f"{schema}.{name}"


def _step(link: Link) -> str:
    """What ``link.reader`` does, said of it: ``reads app.secrets``, ``is a partition of app.parted``..."""
    source = _shown(link.source)
    if link.how == READS:
        return f"reads {source}"
    if link.how == HOLDS:
        return f"holds the rows of its {'partition' if link.partition else 'child table'} {source}"
    return f"is {'a partition' if link.partition else 'an inheritance child'} of {source}"


def _seed_reason(relation: Relation, policy: GuardPolicy) -> str | None:
    """Why ``relation`` itself may not be read, said of it (None: it may)."""
    schema, name = relation
    if not policy.schema_allowed(schema):
        return f"is in schema {schema}, which is not in ALLOWED_SCHEMAS"
    if policy.blocked_entry(schema, name) is not None:
        return "is blocked by BLOCKED_TABLES"
    return None


@dataclass(frozen=True)
class Lineage:
    """Relations whose rows include a blocked table's, each with the path (``app.v reads app.secrets, which
    is blocked by BLOCKED_TABLES``). The blocked tables themselves are not in it: the guard refuses them by
    name."""

    reached: Mapping[Relation, str] = field(default_factory=dict)
    _by_name: Mapping[str, tuple[Relation, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Every call looks its relations up here: by name, never by scanning (a catalog may hide thousands).
        by_name: dict[str, list[Relation]] = {}
        for relation in sorted(self.reached):
            by_name.setdefault(relation[1], []).append(relation)
        object.__setattr__(self, "_by_name", {name: tuple(found) for name, found in by_name.items()})

    @property
    def hidden(self) -> frozenset[Relation]:
        return frozenset(self.reached)

    def refusal(self, references: Iterable[tuple[str | None, str]], policy: GuardPolicy) -> str | None:
        """Why a statement naming ``references`` ((schema or None, name) pairs) may not run; None when it may.

        An unqualified name counts as every relation of that name its search path may reach: with
        ALLOWED_SCHEMAS the path is exactly those schemas; without, it is not known here, so every schema.
        """
        if not self.reached:
            return None
        for schema, name in sorted(references, key=lambda ref: (ref[0] or "", ref[1])):  # a few names
            for relation, path in self._matches(schema, name, policy):
                if schema is None:
                    return (f"table {name} may resolve to {_shown(relation)}, which returns rows of a blocked table "
                            f"({path}); qualify the name with its schema if you mean another table")
                return f"table {_shown(relation)} returns rows of a blocked table: {path}"
        return None

    def _matches(self, schema: str | None, name: str, policy: GuardPolicy) -> list[tuple[Relation, str]]:
        if schema is not None:
            path = self.reached.get((schema, name))
            return [] if path is None else [((schema, name), path)]
        return [(relation, self.reached[relation]) for relation in self._by_name.get(name, ())
                if not policy.allowed_schemas or relation[0] in policy.allowed_schemas]


def trace(links: Iterable[Link], policy: GuardPolicy) -> Lineage:
    """Every relation the ``links`` lead to from a blocked one (or one outside ALLOWED_SCHEMAS), breadth
    first, so each path is a shortest one; relations blocked themselves are left out.

    First the relations whose own rows are blocked: the blocked ones, then their partitions and children
    (``part of`` links). Then everything that reads those (``reads`` and ``holds``): views, materialized
    views, parents. ``part of`` is not followed from a parent refused for holding a blocked partition: its
    other partitions hold none of the blocked rows.
    """
    by_source: dict[Relation, list[Link]] = {}
    for link in links:
        by_source.setdefault(link.source, []).append(link)
    because: dict[Relation, str] = {}
    for source in sorted(by_source):
        reason = _seed_reason(source, policy)
        if reason is not None:
            because[source] = reason
    seeds = frozenset(because)
    _spread(by_source, because, deque(sorted(seeds)), follow={PART_OF})
    _spread(by_source, because, deque(sorted(because)), follow={READS, HOLDS})
    return Lineage(reached={relation: f"{_shown(relation)} {reason}" for relation, reason in because.items()
                            if relation not in seeds})


def _spread(by_source: Mapping[Relation, list[Link]], because: dict[Relation, str], queue: deque[Relation],
            *, follow: set[str]) -> None:
    """Breadth first from ``queue`` along the links of the kinds in ``follow``, recording each new reader."""
    while queue:
        source = queue.popleft()
        for link in sorted(by_source.get(source, ()), key=lambda item: (item.reader, item.how)):
            if link.how in follow and link.reader not in because:
                because[link.reader] = f"{_step(link)}, which {because[source]}"
                queue.append(link.reader)
