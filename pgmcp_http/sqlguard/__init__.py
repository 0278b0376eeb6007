"""SQL safety: text + policy → an approved statement or a refusal with a reason.

Pure functions over pglast (PostgreSQL's own parser). Nothing here opens a
connection, knows HTTP or MCP; the read-only transaction in ``db`` is the
layer beneath it, not a replacement for it.
"""

from pgmcp_http.sqlguard.cache import Guard
from pgmcp_http.sqlguard.errors import Refusal
from pgmcp_http.sqlguard.guard import Approved, check
from pgmcp_http.sqlguard.params import param_key
from pgmcp_http.sqlguard.policy import GuardPolicy

__all__ = ["Approved", "Guard", "GuardPolicy", "Refusal", "check", "param_key"]
