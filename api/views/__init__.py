"""One module per resource; each exposes ``api``, an :class:`api.spec.Api`."""
