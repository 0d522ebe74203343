"""A plugin module that cannot be imported."""

raise RuntimeError("triggerhooks-broken fails on import on purpose")
