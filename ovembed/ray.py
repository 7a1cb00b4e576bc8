"""Ray Data over ovembed models: a callable class for ``Dataset.map_batches`` (``pip install 'ovembed[ray]'``).

Each actor loads the model once (:func:`ovembed.load`, the serving engine in process) and embeds a text
column of every batch it gets into a vector column; Ray schedules the actors, ovembed schedules nothing::

    import ray
    from ovembed.ray import Embedder

    ds = ray.data.read_parquet("s3://bucket/corpus/")  # any Ray Data reader
    ds = ds.map_batches(
        Embedder,
        fn_constructor_kwargs={"model": "/models/minilm", "text_column": "text"},
        concurrency=4,  # actors (model copies), e.g. one per node or per 2-4 cores
        num_cpus=2,  # cores reserved per actor; OpenVINO uses the cores it is given
        batch_size=1024,  # rows per call; the engine re-batches them by token budget
        batch_format="numpy",
    )
    ds.write_parquet("s3://bucket/vectors/")

Every node needs the model folder at the same path (a read-only mount of the model repository).
This module imports nothing from Ray: the class is plain Python, so it also runs without Ray.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np


class Embedder:
    """``map_batches`` callable: adds ``output_column`` (``[rows, dims]``) from ``text_column``.

    ``model``/``config_path``/``load_options`` go to :func:`ovembed.load`; ``embed_options``
    (``prompt_name``, ``dimensions``, ``truncate``, ``precision``, ``batch_size``...) to ``Model.embed``.
    """

    def __init__(self, model: str | os.PathLike[str], *, config_path: str | os.PathLike[str] | None = None,
                 text_column: str = "text", output_column: str = "embedding",
                 load_options: Mapping[str, Any] | None = None, **embed_options: Any) -> None:
        from ovembed.offline.model import load

        self._model = load(model, config_path=config_path, **dict(load_options or {}))
        self.text_column = text_column
        self.output_column = output_column
        self.embed_options = embed_options

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        if self.text_column not in batch:
            raise KeyError(f"the batch has no column '{self.text_column}' (columns: {', '.join(batch)})")
        texts = [str(t) for t in np.asarray(batch[self.text_column]).tolist()]
        out = dict(batch)
        out[self.output_column] = self._model.embed(texts, **self.embed_options)
        return out

    def close(self) -> None:
        self._model.close()
