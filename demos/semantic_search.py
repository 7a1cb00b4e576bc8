"""Semantic search over a folder of text files with ovembed's OpenAI-compatible HTTP API.

    ovembed serve --config_path models/config.json        # in another terminal
    python demos/semantic_search.py                               # demos/data, built-in queries
    python demos/semantic_search.py --folder notes/ --query "how do I ..." --top_k 5

Every .txt file is split into passages at blank lines; the passages are embedded in batches
(base64 on the wire, decoded with numpy), and each query is ranked against them by cosine
similarity. Only httpx and numpy are needed, both ovembed dependencies. The URL and model also
come from OVEMBED_URL and OVEMBED_MODEL; API_KEY is sent when set.
"""

from __future__ import annotations

import argparse
import base64
import os
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np

DEFAULT_QUERIES = [
    "How often should I oil my bike chain?",
    "Why does the sea go in and out twice a day?",
    "What do plants need light for?",
]


@dataclass(frozen=True)
class Passage:
    file: str
    text: str


def load_passages(folder: Path) -> list[Passage]:
    passages = []
    for path in sorted(folder.glob("*.txt")):
        for block in path.read_text(encoding="utf-8").split("\n\n"):
            text = " ".join(block.split())
            if text:
                passages.append(Passage(path.name, text))
    return passages


class Embedder:
    """POST /v3/embeddings in batches; returns float32 rows, L2-normalised by the server."""

    def __init__(self, url: str, model: str, api_key: str | None, batch_size: int = 32) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(base_url=url, headers=headers, timeout=120)
        self._model = model
        self._batch_size = batch_size

    def __call__(self, texts: list[str]) -> np.ndarray:
        rows: list[np.ndarray] = []
        for start in range(0, len(texts), self._batch_size):
            resp = self._client.post("/v3/embeddings", json={
                "model": self._model, "input": texts[start:start + self._batch_size], "encoding_format": "base64"})
            resp.raise_for_status()
            data = sorted(resp.json()["data"], key=lambda d: d["index"])
            rows += [np.frombuffer(base64.b64decode(d["embedding"]), dtype="<f4") for d in data]
        return np.vstack(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("OVEMBED_URL", "http://127.0.0.1:8000"))
    parser.add_argument("--model", default=os.environ.get("OVEMBED_MODEL", "minilm"))
    parser.add_argument("--folder", type=Path, default=Path(__file__).parent / "data")
    parser.add_argument("--query", action="append", help="Query (repeatable); default: three examples")
    parser.add_argument("--top_k", type=int, default=3)
    args = parser.parse_args()

    passages = load_passages(args.folder)
    if not passages:
        parser.error(f"no .txt files with text in {args.folder}")
    embed = Embedder(args.url, args.model, os.environ.get("API_KEY"))
    started = time.perf_counter()
    index = embed([p.text for p in passages])
    files = len({p.file for p in passages})
    print(f"indexed {len(passages)} passages from {files} files in {args.folder} "
          f"({index.shape[1]} dimensions, {time.perf_counter() - started:.2f} s)")

    queries = args.query or DEFAULT_QUERIES
    for query, vector in zip(queries, embed(queries), strict=True):
        scores = index @ vector  # cosine similarity: the vectors are normalised
        print(f"\nquery: {query}")
        for i in np.argsort(-scores)[: args.top_k]:
            text = passages[i].text
            print(f"  {scores[i]:.3f}  {passages[i].file:<20} {text[:90]}{'...' if len(text) > 90 else ''}")


if __name__ == "__main__":
    main()
