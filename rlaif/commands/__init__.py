"""CLI command modules, one per area; each exposes ``register(app)`` and imports heavy libraries lazily."""
