"""ovembed as LangChain's ``OpenAIEmbeddings`` (``pip install langchain-openai``), feeding an
in-memory vector store.

    ovembed serve --config_path models/config.json        # in another terminal
    python demos/langchain_client.py [--url http://127.0.0.1:8000] [--model minilm]
    python demos/langchain_client.py --tokenizer models/minilm    # + the length-safe path

The URL and model also come from OVEMBED_URL and OVEMBED_MODEL; API_KEY is sent when set.

Why ``check_embedding_ctx_length=False``: by default OpenAIEmbeddings tokenizes every text with
tiktoken and sends OpenAI token ids. ovembed does accept token ids, but as ids of the served
model's own vocabulary (the ones /v3/tokenize returns), so tiktoken's ids would embed the wrong
tokens; and tiktoken downloads its BPE file from the internet on first use, so that path fails
offline anyway. With ``check_embedding_ctx_length=False`` LangChain sends the text and the server
tokenizes it with the model's tokenizer.

``--tokenizer FOLDER`` shows LangChain's length-safe path done right for a non-OpenAI model:
``tiktoken_enabled=False`` with the model's Hugging Face tokenizer (an exported ovembed model
folder works: it holds tokenizer.json) splits long texts into chunks that fit the model, sends
them as text and averages the chunk embeddings (weighted by chunk length). It needs ``transformers`` (the export extra).
"""

from __future__ import annotations

import argparse
import os

from langchain_core.vectorstores import InMemoryVectorStore
from langchain_openai import OpenAIEmbeddings
from pydantic import SecretStr

DOCUMENTS = [
    "Sourdough bread rises thanks to wild yeast and lactic acid bacteria in the starter.",
    "The moon's gravity pulls the oceans, which is why tides rise and fall twice a day.",
    "Plants turn sunlight, water and carbon dioxide into sugar through photosynthesis.",
    "Lubricate a bicycle chain after riding in the rain to keep it from rusting.",
]
QUERY = "Why is there a high tide and a low tide?"


def _embeddings(url: str, model: str, **options: object) -> OpenAIEmbeddings:
    api_key = SecretStr(os.environ.get("API_KEY") or "unused")
    return OpenAIEmbeddings(model=model, base_url=f"{url}/v3", api_key=api_key, **options)  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("OVEMBED_URL", "http://127.0.0.1:8000"))
    parser.add_argument("--model", default=os.environ.get("OVEMBED_MODEL", "minilm"))
    parser.add_argument("--tokenizer", help="Hugging Face tokenizer folder of the served model (length-safe path)")
    parser.add_argument("--max_tokens", type=int, default=240,
                        help="Tokens per chunk on the length-safe path: below the model's maximum (256 for MiniLM) "
                             "less [CLS]/[SEP], with a margin: a chunk is sent as decoded text, and re-tokenizing "
                             "it can give a few more tokens")
    args = parser.parse_args()

    embeddings = _embeddings(args.url, args.model, check_embedding_ctx_length=False)
    vectors = embeddings.embed_documents(DOCUMENTS)
    print(f"embed_documents: {len(vectors)} vectors x {len(vectors[0])} dimensions")

    store = InMemoryVectorStore.from_texts(DOCUMENTS, embedding=embeddings)
    print(f"similarity_search_with_score({QUERY!r}, k=2):")
    for doc, score in store.similarity_search_with_score(QUERY, k=2):
        print(f"  {score:.3f}  {doc.page_content}")

    if args.tokenizer:
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # the tokenizer warns about long texts: intended
        # truncate=True (an ovembed request field) is the safety net should a chunk still come out long.
        safe = _embeddings(args.url, args.model, tiktoken_enabled=False, tiktoken_model_name=args.tokenizer,
                           embedding_ctx_length=args.max_tokens, model_kwargs={"extra_body": {"truncate": True}})
        long_text = " ".join(DOCUMENTS[2:3] * 60)  # ~1,000 tokens: over MiniLM's 256
        vector = safe.embed_query(long_text)
        short = safe.embed_query(DOCUMENTS[2])
        cosine = sum(a * b for a, b in zip(vector, short, strict=True))
        print(f"length-safe: a {len(long_text.split())}-word text embedded in chunks of {args.max_tokens} "
              f"tokens -> {len(vector)} dimensions, cosine {cosine:.3f} with its single sentence")


if __name__ == "__main__":
    main()
