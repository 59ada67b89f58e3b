"""HTTP and CLI edges of Muster: the aiohttp app, its views, and the ``muster`` command."""
