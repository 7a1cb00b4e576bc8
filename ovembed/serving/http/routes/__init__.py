"""Starlette route handlers, one module per API family; each exposes ``routes()``.

Handlers parse with :mod:`ovembed.serving.wire`, call the :class:`Registry` /
:class:`Servable` found in ``app.state`` and raise domain errors; they never build error
bodies themselves.
"""
