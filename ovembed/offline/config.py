"""`ovembed embed`'s options: a config class of :mod:`ovembed.config`'s kind (``option`` fields on the
same base class), so :mod:`ovembed.cli` derives its flags and ``OVEMBED_*`` variables the same way."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ovembed.config import WeightFormat, _Checked, _require, option

EMBED_PRECISIONS = ("float32", "float16", "int8", "uint8", "binary", "ubinary")


@dataclass(frozen=True)
class EmbedConfig(_Checked):
    """`ovembed embed`: a corpus (or an OpenAI batch file) through a model in process; resumable."""

    model_path: Path | None = option(None, "The exported model folder")
    config_path: Path | None = option(None, "Or a repository's config.json, with --model_name")
    model_name: str | None = option(None, "With --config_path (or --source_model): the model's served name")
    source_model: str | None = option(None, "Or a Hub id or folder, exported into --model_repository_path first "
                                      "if missing (as `ovembed serve --source_model`)")
    model_repository_path: Path = option(Path("models"), "With --source_model: the repository to export into")
    weight_format: WeightFormat = option(WeightFormat.INT8, "With --source_model: weight compression of the export")
    input: str | None = option(None, "Corpus: .txt (a document per line), .jsonl/.json, .csv/.tsv, .parquet, a "
                               "folder of .txt files, or - (stdin, a document per line)")
    batch_file: Path | None = option(None, "Or an OpenAI batch input .jsonl (vLLM run-batch); --output gets the "
                                     "batch output .jsonl")
    output: Path = option(Path(), "Vectors: .parquet (id, embedding, tokens), .npy (+ .ids.jsonl) or .jsonl",
                          required=True)
    text_field: str = option("text", "JSON/CSV/Parquet field holding the text")
    id_field: str | None = option(None, "Field holding the document id (default: the row number)")
    truncate: bool = option(False, "Truncate inputs longer than the model's maximum (default: the model's "
                            "setting; too long inputs go to the errors file)")
    prompt_name: str | None = option(None, "One of the model's prompts (e.g. query, document)")
    dimensions: int | None = option(None, "Keep the first N dimensions (Matryoshka)")
    precision: str = option("float32", "Stored type: float32, float16, or the server's int8, uint8, binary, ubinary")
    keep_text: bool = option(False, "Parquet/JSONL: also store each text")
    batch_size: int = option(256, "Texts per engine call (batches are then formed by --max_batch_tokens)")
    rows_per_group: int = option(4096, "Rows per output row group: the unit of progress and of resuming")
    max_batch_tokens: int = option(1024, "Token budget of one inference batch (as ovembed serve)")
    target_device: str | None = option(None, "Override the model's target_device")
    overwrite: bool = option(False, "Start again even if --output or an unfinished run of it exists")
    quiet: bool = option(False, "No progress bar (also off when stderr is not a terminal)")

    def _check(self) -> None:
        _require((self.input is None) != (self.batch_file is None), "give either --input or --batch_file")
        sources = [self.model_path is not None, self.config_path is not None, self.source_model is not None]
        _require(sum(sources) == 1, "give one of --model_path, --config_path (with --model_name), --source_model")
        _require(self.config_path is None or self.model_name is not None, "--config_path needs --model_name")
        _require(self.precision in EMBED_PRECISIONS, f"--precision must be one of {', '.join(EMBED_PRECISIONS)}")
        _require(self.dimensions is None or self.dimensions >= 1, "--dimensions must be at least 1")
        for name in ("batch_size", "rows_per_group", "max_batch_tokens"):
            _require(getattr(self, name) >= 1, f"--{name} must be positive, got {getattr(self, name)}")
