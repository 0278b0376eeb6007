"""MCP prompts: workflows a DBA would hand a junior, as messages that tell the model which tools to use.

Hosts show prompts as slash commands. Each one is a template over a few
string arguments; it reads nothing from the database (the tools it names do
that, under the same guard and limits as any call).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

__all__ = ["PROMPTS", "Prompt", "PromptArgument", "PromptError", "Prompts", "UnknownPrompt"]


class PromptError(ValueError):
    """Arguments a prompt cannot take: missing, unknown or empty."""


class UnknownPrompt(PromptError):
    """No prompt of that name."""


@dataclass(frozen=True)
class PromptArgument:
    name: str
    description: str
    required: bool = False


@dataclass(frozen=True)
class Prompt:
    """One workflow: its arguments and the text it expands to."""

    name: str
    title: str
    description: str
    arguments: tuple[PromptArgument, ...]
    render: Callable[[Mapping[str, str]], str]

    def argument_names(self) -> tuple[str, ...]:
        return tuple(argument.name for argument in self.arguments)

    def entry(self) -> dict[str, object]:
        """The ``prompts/list`` entry."""
        return {"name": self.name, "title": self.title, "description": self.description,
                "arguments": [{"name": a.name, "description": a.description, "required": a.required}
                              for a in self.arguments]}

    def messages(self, arguments: Mapping[str, object] | None) -> list[dict[str, object]]:
        """The ``prompts/get`` messages, after checking ``arguments``; PromptError says what is wrong."""
        given = dict(arguments or {})
        unknown = sorted(set(given) - set(self.argument_names()))
        if unknown:
            known = ", ".join(self.argument_names()) or "none"
            raise PromptError(f"prompt {self.name} has no argument {', '.join(unknown)}; its arguments: {known}")
        values: dict[str, str] = {}
        for argument in self.arguments:
            value = given.get(argument.name)
            if value is None or (isinstance(value, str) and not value.strip()):
                if argument.required:
                    raise PromptError(f"prompt {self.name} needs the argument {argument.name!r}: "
                                      f"{argument.description}")
                continue
            if not isinstance(value, str):
                raise PromptError(f"argument {argument.name!r} of prompt {self.name} must be a string")
            values[argument.name] = value.strip()
        return [{"role": "user", "content": {"type": "text", "text": self.render(values)}}]


def _in_schema(values: Mapping[str, str]) -> str:
    schema = values.get("schema")
    return f"schema {schema}" if schema else "every schema this server exposes"


def _schema_argument(values: Mapping[str, str]) -> str:
    schema = values.get("schema")
    return f'{{"schema_name": "{schema}"}}' if schema else "{}"


def _explain_slow_query(values: Mapping[str, str]) -> str:
    return (
        "This PostgreSQL query is slow. Find out why and what would make it fast.\n\n"
        f"```sql\n{values['sql']}\n```\n\n"
        "1. Call `analyze_query` with this SQL (if it has $1..$n placeholders, leave `params` out to see the "
        "generic plan, or pass typical values). It explains without running the query.\n"
        "2. In `summary.scans`, look for a `Seq Scan` whose `estimated_rows` is small next to `table_rows`: a "
        "selective filter read the hard way. In `summary.joins`, note the join order and strategy. In "
        "`summary.may_spill`, note sorts or hashes larger than work_mem.\n"
        "3. Read `suggestions`. An index suggestion with `verified: true` and `planner_uses_it: true` was tried "
        "hypothetically: quote its `cost_before` and `cost_after`. Unverified ones are guesses.\n"
        "4. Call `describe_table` for each table the plan scans: existing indexes (maybe one is unused because "
        "of a cast or a function on the column), `statistics.analyzed`, dead tuples.\n"
        "5. Answer with: the cause in one sentence, the fix (a `CREATE INDEX` statement, a rewritten query, or "
        "`ANALYZE`), and the expected gain. Do not try to create anything: this server is read-only; the fix "
        "is for a person to apply."
    )


def _describe_database(values: Mapping[str, str]) -> str:
    return (
        f"Give me an overview of the database ({_in_schema(values)}).\n\n"
        f"1. Call `list_tables` with {_schema_argument(values)} (follow `next_cursor` if there is one).\n"
        "2. Pick the main tables: the largest (`total_bytes`), and those other tables reference. Call "
        "`describe_table` on each (at most ten).\n"
        "3. Describe the entities and how they relate (foreign keys out and in), the size of each, and "
        "anything an engineer should know: tables without a primary key, never analyzed, with row-level "
        "security, partitioned, views and what they compute.\n"
        "4. End with three example questions this data can answer, each with the SQL you would run through "
        "the `query` tool."
    )


def _find_missing_indexes(values: Mapping[str, str]) -> str:
    return (
        f"Find indexes that are missing, unused or broken in {_in_schema(values)}.\n\n"
        '1. Call `database_health` with `{"sections": ["indexes", "vacuum", "statements"]}`: unused and invalid '
        "indexes, tables never analyzed, and the statements that take the most time (when "
        "pg_stat_statements is installed).\n"
        f"2. Call `list_tables` with {_schema_argument(values)} and, for the largest tables, `describe_table`: "
        "compare `statistics.seq_scans` with `statistics.index_scans`; many sequential scans on a large table "
        "suggest a missing index.\n"
        "3. For each top statement (or a typical query on those tables), call `analyze_query` and keep the "
        "index suggestions the planner would use (`verified` and `planner_uses_it`).\n"
        "4. Report three lists: indexes to add (with the `CREATE INDEX` statement and the measured cost "
        "change), indexes to consider dropping (unused, with their size; check replicas first), and invalid "
        "indexes to rebuild."
    )


def _check_database_health(values: Mapping[str, str]) -> str:
    return (
        "Check this PostgreSQL database's health the way a DBA would first thing in the morning.\n\n"
        "1. Call `database_health` (all sections).\n"
        "2. Sort its `findings` by urgency: transaction-id wraparound and replication first, then connection "
        "use and long or idle-in-transaction sessions, then vacuum and cache, then indexes.\n"
        "3. For each finding, say what it means in one sentence and the exact action (the statement to run or "
        "the setting to change). Mention what the server's role could not see (`notes`).\n"
        "4. If everything is fine, say so in one line and list the three figures that show it."
    )


def _explore_table(values: Mapping[str, str]) -> str:
    schema = values.get("schema", "public")
    table = values["table_name"]
    return (
        f"Explore the table {schema}.{table} and tell me what it holds.\n\n"
        f'1. Call `describe_table` with {{"schema_name": "{schema}", "table_name": "{table}"}}.\n'
        "2. Call `query` for a sample: `SELECT * FROM` the table `LIMIT 5` (quote the names if they have "
        "capitals), then one aggregate per interesting column (counts, distinct values, min/max of dates).\n"
        "3. Explain each column in plain words, how the table relates to others (foreign keys out and in), "
        "and any data-quality issue you notice (NULLs where you would not expect them, odd values)."
    )


_SCHEMA = PromptArgument("schema", "Only this schema (default: every schema the server exposes).")

PROMPTS: dict[str, Prompt] = {prompt.name: prompt for prompt in (
    Prompt("explain_slow_query", "Explain a slow query",
           "Find out why a query is slow and what would fix it, with verified index advice.",
           (PromptArgument("sql", "The slow SQL statement.", required=True),), _explain_slow_query),
    Prompt("describe_database", "Describe the database",
           "An overview of the tables, how they relate, and what an engineer should know.",
           (_SCHEMA,), _describe_database),
    Prompt("find_missing_indexes", "Find missing indexes",
           "Indexes to add (verified with the planner), unused ones to drop, invalid ones to rebuild.",
           (_SCHEMA,), _find_missing_indexes),
    Prompt("check_database_health", "Check database health",
           "What a DBA checks first: connections, long transactions, vacuum, cache, wraparound, replication.",
           (), _check_database_health),
    Prompt("explore_table", "Explore a table",
           "What a table holds: its columns, a sample, and how it relates to the others.",
           (PromptArgument("table_name", "The table or view to explore.", required=True), _SCHEMA),
           _explore_table),
)}


class Prompts:
    """The prompts this server offers, with ``schema`` arguments held to ALLOWED_SCHEMAS."""

    def __init__(self, *, schema_allowed: Callable[[str], bool]) -> None:
        self._schema_allowed = schema_allowed

    def list(self) -> list[dict[str, object]]:
        return [prompt.entry() for prompt in PROMPTS.values()]

    def get(self, name: str, arguments: Mapping[str, object] | None) -> dict[str, object]:
        """A GetPromptResult; UnknownPrompt or PromptError when the request cannot be served."""
        prompt = PROMPTS.get(name)
        if prompt is None:
            raise UnknownPrompt(f"no prompt named {name!r}; prompts/list shows {', '.join(PROMPTS)}")
        schema = (arguments or {}).get("schema")
        if isinstance(schema, str) and schema.strip() and not self._schema_allowed(schema.strip()):
            raise PromptError(f"schema {schema!r} is not one this server exposes")
        return {"description": prompt.description, "messages": prompt.messages(arguments)}
