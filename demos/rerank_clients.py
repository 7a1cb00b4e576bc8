"""ovembed as the rerank backend of the clients people already use: the official ``cohere`` SDK
(``pip install cohere``), LangChain's ``CohereRerank`` (``pip install langchain-cohere``) and
LlamaIndex's ``CohereRerank`` (``pip install llama-index-postprocessor-cohere-rerank``).

    ovembed serve --config_path models/config.json        # with a rerank model in it
    python demos/rerank_clients.py [--url http://127.0.0.1:8000] [--model ms-marco]

The URL and model also come from OVEMBED_URL and OVEMBED_MODEL; API_KEY is sent when set (the
clients need some key: without one, "unused" is sent and a keyless server ignores it).

How each one is pointed at ovembed:
- cohere: ``cohere.ClientV2(base_url=URL)``: the SDK appends ``/v2/rerank``, which ovembed serves.
- LangChain: ``CohereRerank(client=cohere.ClientV2(base_url=URL), model=...)``: it has no
  base-URL setting of its own, but takes the client.
- LlamaIndex: ``CohereRerank(base_url=URL, model=...)``.
LangChain's and LlamaIndex's Cohere packages pin ``cohere<6``; the demo runs whichever of them
is installed and says which it skipped.
"""

from __future__ import annotations

import argparse
import os

import cohere

DOCUMENTS = [
    "Paris is the capital and most populous city of France.",
    "Berlin is the capital of Germany.",
    "To reset your password, open the settings page.",
    "The Eiffel Tower was completed in 1889 in Paris.",
]
QUERY = "What is the capital of France?"


def show(name: str, ranked: list[tuple[int, float]]) -> None:
    print(f"{name}: " + ", ".join(f"#{index} {score:.4f}" for index, score in ranked))


def with_cohere(client: cohere.ClientV2, model: str, top_n: int) -> None:
    resp = client.rerank(model=model, query=QUERY, documents=DOCUMENTS, top_n=top_n)
    show("cohere", [(r.index, r.relevance_score) for r in resp.results])


def with_langchain(client: cohere.ClientV2, model: str, top_n: int, key: str) -> None:
    try:
        from langchain_cohere import CohereRerank
        from langchain_core.documents import Document
    except ImportError:
        print("langchain: skipped (pip install langchain-cohere)")
        return
    reranker = CohereRerank(client=client, model=model, top_n=top_n, cohere_api_key=key)
    docs = reranker.compress_documents([Document(page_content=d) for d in DOCUMENTS], QUERY)
    show("langchain", [(DOCUMENTS.index(d.page_content), d.metadata["relevance_score"]) for d in docs])


def with_llamaindex(url: str, model: str, top_n: int, key: str) -> None:
    try:
        from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
        from llama_index.postprocessor.cohere_rerank import CohereRerank
    except ImportError:
        print("llamaindex: skipped (pip install llama-index-postprocessor-cohere-rerank)")
        return
    reranker = CohereRerank(api_key=key, model=model, top_n=top_n, base_url=url)
    nodes = [NodeWithScore(node=TextNode(text=d), score=0.0) for d in DOCUMENTS]
    out = reranker.postprocess_nodes(nodes, query_bundle=QueryBundle(QUERY))
    show("llamaindex", [(DOCUMENTS.index(n.node.get_content()), float(n.score or 0.0)) for n in out])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=os.environ.get("OVEMBED_URL", "http://127.0.0.1:8000"))
    parser.add_argument("--model", default=os.environ.get("OVEMBED_MODEL", "ms-marco"))
    parser.add_argument("--top_n", type=int, default=3)
    args = parser.parse_args()
    key = os.environ.get("API_KEY") or "unused"
    client = cohere.ClientV2(api_key=key, base_url=args.url)
    print(f"query: {QUERY!r}, {len(DOCUMENTS)} documents, top_n={args.top_n}")
    with_cohere(client, args.model, args.top_n)
    with_langchain(client, args.model, args.top_n, key)
    with_llamaindex(args.url, args.model, args.top_n, key)


if __name__ == "__main__":
    main()
