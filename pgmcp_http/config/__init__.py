"""Configuration: read once from the environment into one frozen, validated object.

Every variable is declared in :mod:`~pgmcp_http.config.variables` with its default, help line and
group (``docs/configuration.md`` is generated from it by ``make docs``). A bad value raises
:class:`ConfigError` whose message is one line naming the variable, what was expected and what to
do; the entry points turn it into a clean exit. One module per area reads its variables:
``database``, ``http``, ``limits``, ``identity`` and ``oauth``, ``observability``, ``deployment``;
``settings`` puts them together.

This package imports nothing from the rest of the server: everything else receives a
:class:`Settings` and nobody reads ``os.environ`` after start-up.
"""

from pgmcp_http.config.database import clean_database_url
from pgmcp_http.config.identity import JwtSettings, TokenEntry
from pgmcp_http.config.limits import TOOL_NAME
from pgmcp_http.config.oauth import OAuthSettings
from pgmcp_http.config.reader import ConfigError
from pgmcp_http.config.settings import Settings, load_settings, settings_or_exit
from pgmcp_http.config.urls import LOOPBACK_NAMES
from pgmcp_http.config.variables import GROUPS, VARIABLES, Group, Variable

__all__ = ["GROUPS", "LOOPBACK_NAMES", "TOOL_NAME", "VARIABLES", "ConfigError", "Group", "JwtSettings",
           "OAuthSettings", "Settings", "TokenEntry", "Variable", "clean_database_url", "load_settings",
           "settings_or_exit"]
