"""Custom tools from TOOLS_FILE: named, parameterised SQL served as MCP tools without writing Python.

``yamlfile`` reads the file with line numbers, ``definition`` validates its
shape, ``statement`` runs the guard and matches ``$n`` to parameters,
``planning`` asks PostgreSQL to plan each statement, ``schema`` and
``arguments`` give the JSON Schemas and the binding, ``tool`` makes the
ToolSpec and ``startup`` puts it together.
"""

from pgmcp_http.tools.custom.definition import Ceilings, Parameter, ToolDefinition
from pgmcp_http.tools.custom.errors import ToolsFileError
from pgmcp_http.tools.custom.startup import custom_tools, load_definitions

__all__ = ["Ceilings", "Parameter", "ToolDefinition", "ToolsFileError", "custom_tools", "load_definitions"]
