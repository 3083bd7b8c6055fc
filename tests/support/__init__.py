"""Test-only stand-ins for servers that do not install here (a ClickHouse HTTP endpoint)."""
