"""The MCP server: the traces as tools and resources for a coding agent (ARCHITECTURE.md)."""
