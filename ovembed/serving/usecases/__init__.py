"""Transport-neutral use cases: typed requests in, typed results or domain errors out.

Every front end (OpenAI, Ollama, KServe REST, gRPC) is a thin adapter: it parses its wire format
(:mod:`ovembed.serving.wire`), calls a use case here with the request's
:class:`~ovembed.serving.context.RequestContext`, and renders the result. Resolving the model,
checking its version and the request against it, submitting to the engine and cancelling when
the client goes away are written once, here. A new task adds a module next to :mod:`.embed`.
"""
