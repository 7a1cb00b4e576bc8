"""ovembed with the official OpenAI Python client (``pip install openai``).

    ovembed serve --config_path models/config.json        # in another terminal
    python demos/openai_client.py [--url http://127.0.0.1:8000] [--model minilm]

The URL and model also come from OVEMBED_URL and OVEMBED_MODEL; API_KEY is sent when set.
ovembed answers at /v3 (OpenVINO Model Server's path) and /v1 (OpenAI's): either works as base_url.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os

import numpy as np
import openai

SENTENCES = [
    "The cat sat on the mat.",
    "A kitten is resting on a rug.",
    "Stock markets fell sharply on Monday.",
    "Shares dropped at the start of the week.",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("OVEMBED_URL", "http://127.0.0.1:8000"))
    parser.add_argument("--model", default=os.environ.get("OVEMBED_MODEL", "minilm"))
    args = parser.parse_args()

    # An event hook records what the SDK actually sends, to show the wire format.
    sent: list[dict[str, object]] = []
    http_client = openai.DefaultHttpxClient(event_hooks={"request": [lambda r: sent.append(json.loads(r.content))]})
    client = openai.OpenAI(base_url=f"{args.url}/v3", api_key=os.environ.get("API_KEY") or "unused",
                           http_client=http_client)

    # 1. The default path: the SDK asks for base64 (4x smaller than JSON floats) and decodes it.
    resp = client.embeddings.create(model=args.model, input=SENTENCES)
    vectors = np.array([d.embedding for d in sorted(resp.data, key=lambda d: d.index)], dtype=np.float32)
    print(f"default: {vectors.shape[0]} embeddings x {vectors.shape[1]} dimensions from {resp.model!r}, "
          f"{resp.usage.prompt_tokens} prompt tokens, encoding_format={sent[-1].get('encoding_format')!r} "
          "on the wire")

    # 2. Plain JSON floats: the same vectors.
    floats = client.embeddings.create(model=args.model, input=SENTENCES, encoding_format="float")
    as_float = np.array([d.embedding for d in floats.data], dtype=np.float32)
    print(f"float: encoding_format={sent[-1].get('encoding_format')!r}, "
          f"max |float - base64| = {float(np.max(np.abs(as_float - vectors))):.1e}")

    # 3. dimensions: the first N values, re-normalised, for models trained for shorter vectors
    # (Matryoshka, recorded at export); any other model answers 400 rather than return worse vectors.
    try:
        small = client.embeddings.create(model=args.model, input=SENTENCES[0], dimensions=64)
        short = np.array(small.data[0].embedding, dtype=np.float32)
        print(f"dimensions=64: {short.shape[0]} values, norm {float(np.linalg.norm(short)):.4f}")
    except openai.BadRequestError as exc:
        body = exc.body if isinstance(exc.body, dict) else {}
        print(f"dimensions=64: refused (400): {body.get('message', exc)}")

    # Normalised vectors: cosine similarity is a dot product.
    print("cosine similarity, most similar first:")
    pairs = sorted(itertools.combinations(range(len(SENTENCES)), 2),
                   key=lambda p: -float(vectors[p[0]] @ vectors[p[1]]))
    for i, j in pairs:
        print(f"  {float(vectors[i] @ vectors[j]):.3f}  {SENTENCES[i]!r} ~ {SENTENCES[j]!r}")


if __name__ == "__main__":
    main()
