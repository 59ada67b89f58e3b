"""Muster's domain core (pure) and its storage adapters (``dispatch.storage``)."""
