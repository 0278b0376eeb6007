"""Reading PostgreSQL plans: a digest an agent can act on, and index advice drawn from it.

Pure code over ``EXPLAIN (FORMAT JSON, VERBOSE)`` documents and catalog facts
handed in by the caller; the ``analyze_query`` tool does the database work
(explaining, reading the catalogs, trying hypothetical indexes with hypopg).
"""

from pgmcp_http.planner.advice import Candidate, RelationFacts, advise
from pgmcp_http.planner.digest import digest, estimate, overflowed, plan_relations, uses_index

__all__ = ["Candidate", "RelationFacts", "advise", "digest", "estimate", "overflowed", "plan_relations",
           "uses_index"]
