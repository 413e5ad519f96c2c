"""One SQL model per file (the DuckDB sink schema); shipped as package data."""
