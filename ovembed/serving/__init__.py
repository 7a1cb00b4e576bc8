"""Serving stack: imports only openvino, numpy and the web/RPC libraries (no torch)."""
