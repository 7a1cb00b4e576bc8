"""What an export task is: one :class:`ExportTask` subclass per :class:`~ovembed.config.Task` (the one
table is :data:`ovembed.export.tasks.EXPORT_TASKS`), made once per export. The pipeline calls, in order,
:meth:`~ExportTask.check` (before any work), :meth:`~ExportTask.build` or :meth:`~ExportTask.build_from_ir`
(inside its temporary folder; the record they return is written by :func:`write_record`), and
:meth:`~ExportTask.write_graph`. Converting, compressing, exporting the tokenizer, taking an IR source as
published and the record's common fields are written here once; a task adds its checks, head, verification,
graph and record fields.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from ovembed.config import ExportConfig, Pooling, Task, WeightFormat
from ovembed.errors import ExportError
from ovembed.export.common import Log, hub_record, versions
from ovembed.export.convert import IR_XML
from ovembed.hf_files import read_json_object
from ovembed.prompts import PromptSet, parse_prompt_flags, read_model_prompts
from ovembed.repository import RECORD_FILENAME, atomic_write_text

if TYPE_CHECKING:
    from ovembed.export.quantize import QuantizationParams
    from ovembed.export.source import SourceModel
    from ovembed.export.static_quant import Calibration


def write_record(folder: Path, record: dict[str, Any]) -> None:
    """The model's ``ovembed_model.json``: what was exported from what, with which versions and checks."""
    atomic_write_text(folder / RECORD_FILENAME, json.dumps(record, indent=2) + "\n")


class _Comparison(Protocol):
    @property
    def passed(self) -> bool: ...

    def summary(self) -> str: ...


def require_passed(result: _Comparison) -> None:
    """A verification that failed stops the export: nothing is written."""
    if not result.passed:
        raise ExportError("verification failed, nothing was written:\n" + result.summary())


def require_architecture(source: SourceModel, task: Task, wanted: str, suffix: str) -> dict[str, Any]:
    """Refuse, before any work, a source whose config.json declares no ``*<suffix>`` architecture; its config."""
    config = read_json_object(source.path / "config.json")
    architectures = [str(a) for a in config.get("architectures") or []]
    if not any(a.endswith(suffix) for a in architectures):
        found = ", ".join(architectures) or "none declared"
        raise ExportError(f"--task {task.value} needs {wanted} (a *{suffix} model); {source.path} has "
                          f"architectures: {found}")
    return config


def choose_prompts(cfg: ExportConfig, source: SourceModel, log: Log) -> PromptSet:
    """The model's own prompts, plus (or overridden by) ``--prompt``; the default from
    ``--default_prompt_name``, else the model's."""
    own, own_default = read_model_prompts(source.path)
    added = parse_prompt_flags(list(cfg.prompt))
    prompts = {**own, **added}
    default = cfg.default_prompt_name if cfg.default_prompt_name is not None else own_default
    if default is not None and default not in prompts:
        raise ExportError(f"--default_prompt_name {default!r} is not one of the prompts "
                          f"({', '.join(prompts) or 'none'}); add it with --prompt {default}=...")
    if prompts:
        log(f"prompts: {', '.join(prompts)}" + (f" (default {default})" if default else ""))
    return PromptSet(prompts, default)


@dataclass(frozen=True)
class Choices:
    """What :meth:`ExportTask.check` settled from the flags and the source before any work."""

    pooling: Pooling = Pooling.CLS  # embeddings only; the result shows it (other heads do not pool by it)
    prompts: PromptSet = field(default_factory=PromptSet)


class ExportTask:
    """One export of one task: ``cfg`` from ``source`` into ``work`` (set by the pipeline)."""

    task: ClassVar[Task]
    hf_task: ClassVar[str]  # optimum-intel's task for the conversion
    static_quantization: ClassVar[bool] = False  # takes --quantization static
    ir_refusal: ClassVar[str | None] = None  # why an OpenVINO IR source is refused, if it is
    ir_converts_tokenizer: ClassVar[bool] = False  # an IR source's tokenizer IR is always converted again
    special_tokens: ClassVar[bool] = True  # the tokenizer IR adds the special tokens itself
    reference_name: ClassVar[str] = "PyTorch model"  # what an IR source is verified against
    recorded_task: ClassVar[bool] = True  # the record names the task (embeddings records predate tasks)

    def __init__(self, cfg: ExportConfig, source: SourceModel, log: Log) -> None:
        self.cfg = cfg
        self.source = source
        self.log = log
        self.choices = Choices()
        self.work = Path()

    # --- what a task defines -------------------------------------------------------------------------
    def check(self) -> Choices:
        """Refuse a source the task cannot export, before any work; the choices made from flags and source."""
        return Choices()

    def fields(self) -> dict[str, Any]:
        """The task's own fields of the record."""
        return {}

    def refreshed_fields(self) -> dict[str, Any]:
        """Record fields an export that keeps the model files (no --overwrite_models) rewrites."""
        return {}

    def verify(self, reference: Path, weight_format: WeightFormat) -> dict[str, Any]:
        """Compare the model in ``work`` with the PyTorch ``reference``; raise when it fails; the record's
        ``verification``."""
        raise NotImplementedError

    def write_graph(self, folder: Path) -> None:
        raise NotImplementedError

    def compress(self, xml: Path, params: QuantizationParams, calibration: Calibration | None) -> dict[str, Any]:
        """Compress the converted IR in place; what was applied."""
        from ovembed.export.quantize import compress_and_save

        return compress_and_save(xml, self.cfg.weight_format, params)

    def use_tokenizer(self, tok: Any) -> None:
        """The source's HF tokenizer, before its IR is written (a head may depend on its template)."""

    # --- shared by every task ------------------------------------------------------------------------
    def record(self, weight_format: WeightFormat, quantization: dict[str, Any]) -> dict[str, Any]:
        source = self.source
        return {
            **({"task": self.task.value} if self.recorded_task else {}),
            "source_model": self.cfg.source_model,
            "source_path": str(source.path),
            **hub_record(source),
            "model_type": source.model_type,
            **self.fields(),
            "weight_format": weight_format.value,
            "quantization": quantization,
            "max_length": source.max_length,
            "max_length_origin": source.max_length_origin,
            "versions": versions(),
            "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }

    def build(self, params: QuantizationParams, calibration: Calibration | None) -> dict[str, Any]:
        """Convert the PyTorch source, compress, export the tokenizer and verify, inside ``work``; the record."""
        from ovembed.export.convert import convert_to_ir
        from ovembed.export.tokenizer import export_tokenizer, load_hf_tokenizer

        cfg, source, log = self.cfg, self.source, self.log
        t0 = time.perf_counter()
        log(f"converting {source.path} with optimum-intel (task {self.hf_task})")
        xml = convert_to_ir(source, self.work, trust_remote_code=cfg.trust_remote_code, task=self.hf_task)
        log(f"  converted in {time.perf_counter() - t0:.1f}s")
        t1 = time.perf_counter()
        applied = self.compress(xml, params, calibration)
        log(f"  weights {cfg.weight_format.value} in {time.perf_counter() - t1:.1f}s")
        tok = load_hf_tokenizer(source.path, max_length=source.max_length, trust_remote_code=cfg.trust_remote_code)
        self.use_tokenizer(tok)
        export_tokenizer(tok, self.work, add_special_tokens=self.special_tokens)
        record = self.record(cfg.weight_format, {**applied, **params.describe()})
        if not cfg.skip_verify:
            record["verification"] = self.verify(source.path, cfg.weight_format)
        return record

    def check_ir(self) -> None:
        """Refuse an OpenVINO IR source that is not this task's (its outputs, its architecture)."""
        from ovembed.export import ir_source

        ir_source.check_ir_outputs(self.source.path / IR_XML, rerank=False)

    def build_from_ir(self) -> tuple[dict[str, Any], WeightFormat]:
        """An OpenVINO IR source used as published (see :mod:`ovembed.export.ir_source`), inside ``work``;
        verified against a PyTorch reference when there is one (its own weights or ``--reference_model``)."""
        from ovembed.export import ir_source, require_export_stack
        from ovembed.export.common import quiet_libraries
        from ovembed.export.tokenizer import load_hf_tokenizer

        cfg, source, log = self.cfg, self.source, self.log
        self.check_ir()
        copied = ir_source.copy_ir(source.path, self.work)
        if self.ir_converts_tokenizer:
            self.use_tokenizer(load_hf_tokenizer(source.path, max_length=source.max_length,
                                                 trust_remote_code=cfg.trust_remote_code))
        origin = ir_source.prepare_tokenizer(source.path, self.work, max_length=source.max_length,
                                             trust_remote_code=cfg.trust_remote_code,
                                             add_special_tokens=self.special_tokens)
        weight_format = ir_source.ir_weight_format(self.work / IR_XML)
        ir_source.describe_ir_use(weight_format, cfg.weight_format, origin, log)
        ir_fields = ir_source.ir_record_fields(origin, copied)
        record = {**self.record(weight_format, ir_fields.pop("quantization")), **ir_fields}
        reference = None if cfg.skip_verify else ir_source.resolve_reference(
            cfg.reference_model, source.path, revision=None, token=cfg.hf_token, quiet=cfg.quiet)
        if reference is not None:
            require_export_stack()
            quiet_libraries()
            record["verification"] = self.verify(reference, weight_format)
            record["reference_model"] = cfg.reference_model or cfg.source_model
        elif not cfg.skip_verify:
            log("not verified: the source holds no PyTorch weights; pass --reference_model ORG/NAME to compare "
                f"the IR with its {self.reference_name}")
        return record, weight_format
