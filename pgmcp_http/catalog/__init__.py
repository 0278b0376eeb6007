"""Catalog SQL: what is in the database, filtered the way the configuration says.

Shared by the schema tools and the ``postgres://`` resources so both see the
same objects. Functions take a transaction and return plain data.
"""

from pgmcp_http.catalog.describe import describe_relation, find_relation
from pgmcp_http.catalog.functions import describe_function, list_functions
from pgmcp_http.catalog.relations import list_relations, list_schemas
from pgmcp_http.catalog.role_audit import role_warnings
from pgmcp_http.catalog.visibility import Visibility

__all__ = [
    "Visibility",
    "describe_function",
    "describe_relation",
    "find_relation",
    "list_functions",
    "list_relations",
    "list_schemas",
    "role_warnings",
]
