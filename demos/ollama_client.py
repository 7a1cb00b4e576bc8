"""ovembed with the Ollama Python client (``pip install ollama``): ovembed answers Ollama's
/api/embed, /api/embeddings and /api/tags, so code written for Ollama works unchanged.

    ovembed serve --config_path models/config.json        # in another terminal
    python demos/ollama_client.py [--url http://127.0.0.1:8000] [--model minilm]

The URL and model also come from OVEMBED_URL and OVEMBED_MODEL; API_KEY is sent when set.
"""

from __future__ import annotations

import argparse
import os

import numpy as np
import ollama

QUERY = "How do I keep my bike chain from squeaking?"
DOCUMENTS = [
    "Clean the chain with a rag, then put one drop of lubricant on each link.",
    "Tides rise and fall twice a day, pulled by the moon.",
    "Grind the coffee beans just before brewing.",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("OVEMBED_URL", "http://127.0.0.1:8000"))
    parser.add_argument("--model", default=os.environ.get("OVEMBED_MODEL", "minilm"))
    args = parser.parse_args()

    key = os.environ.get("API_KEY")
    client = ollama.Client(host=args.url, headers={"Authorization": f"Bearer {key}"} if key else None)
    print("models:", ", ".join(m.model or "" for m in client.list().models))

    # /api/embed: a batch in one call.
    resp = client.embed(model=args.model, input=DOCUMENTS)
    docs = np.array(resp.embeddings, dtype=np.float32)
    print(f"embed: {docs.shape[0]} embeddings x {docs.shape[1]} dimensions, "
          f"{resp.prompt_eval_count} prompt tokens, {(resp.total_duration or 0) / 1e6:.1f} ms")

    # /api/embeddings: Ollama's older one-prompt API.
    query = np.array(client.embeddings(model=args.model, prompt=QUERY).embedding, dtype=np.float32)
    print(f"query: {QUERY!r}")
    scores = docs @ query  # normalised vectors: cosine similarity
    for i in np.argsort(-scores):
        print(f"  {scores[i]:.3f}  {DOCUMENTS[i]}")


if __name__ == "__main__":
    main()
