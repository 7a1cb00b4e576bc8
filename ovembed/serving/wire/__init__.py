"""Wire formats: parse request bodies into frozen dataclasses and shape responses.

One module per API family (OpenAI, Ollama, KServe v2 REST, OVMS tokenize). Nothing here knows
about HTTP or starlette; parsing errors are ``InvalidInput`` with ``param`` set.
"""
