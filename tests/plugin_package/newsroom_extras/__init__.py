"""Example plug-ins for newsroom-pipeline (see pyproject.toml for their entry points)."""
