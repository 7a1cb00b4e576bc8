"""OpenVINO devices: what this machine has, and which precision suits each device.

Everything here takes an ``ov.Core`` from the caller; nothing creates one at import time.
:func:`devices_report` is what ``ovembed devices`` prints; :func:`device_summary` is the line
``ovembed serve`` logs for each model it loads.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ovembed.errors import ConfigError

if TYPE_CHECKING:
    import openvino as ov

# Virtual devices: they pick among physical ones, optionally from a list ("AUTO:GPU,CPU").
_VIRTUAL = ("AUTO", "MULTI", "HETERO", "BATCH")
# /proc/cpuinfo flags that decide int8/bf16 speed, in the order and spelling the report uses.
_ISA_NAMES = {
    "avx2": "AVX2", "avx512f": "AVX-512", "avx512_vnni": "AVX-512 VNNI", "avx_vnni": "AVX-VNNI",
    "avx512_bf16": "AVX-512 BF16", "amx_bf16": "AMX-BF16", "amx_int8": "AMX-INT8", "amx_fp16": "AMX-FP16",
}
_PRECISIONS = ("FP32", "FP16", "BF16", "INT8")


@dataclass(frozen=True)
class DeviceInfo:
    """One physical device as OpenVINO reports it."""

    name: str  # "CPU", "GPU.0", ...
    full_name: str  # e.g. "Intel(R) Xeon(R) Platinum 8480+"
    capabilities: tuple[str, ...]  # OPTIMIZATION_CAPABILITIES: "FP32", "BF16", "INT8", ...
    cpu_flags: frozenset[str] = frozenset()  # ISA flags relevant to int8/bf16 speed (CPU only)

    @property
    def int8_accelerated(self) -> bool:
        """Whether int8 matrix multiplies run faster than fp32 (VNNI/AMX on CPUs; GPUs/NPUs)."""
        if not self.name.startswith("CPU"):
            return "INT8" in self.capabilities
        return bool(self.cpu_flags & {"avx512_vnni", "avx_vnni", "amx_int8"})

    @property
    def bf16_accelerated(self) -> bool:
        """Whether OpenVINO runs this CPU in bf16 by default (AVX512-BF16 or AMX)."""
        return self.name.startswith("CPU") and "BF16" in self.capabilities


@dataclass(frozen=True)
class Advice:
    """What to export/serve with on a device, and why."""

    weight_format: str  # "fp32", "fp16", "int8"
    performance_hint: str  # "LATENCY" or "THROUGHPUT"
    reason: str
    quantization: str = "weight_only"  # or "static": int8 activations too (VNNI/AMX CPUs)

    @property
    def export_flags(self) -> str:
        flags = f"--weight_format {self.weight_format}"
        return flags + (" --quantization static" if self.quantization == "static" else "")


def _cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The AVX-512/VNNI/AMX flags the kernel reports (OpenVINO's OPTIMIZATION_CAPABILITIES
    does not list instruction sets); empty where there is no /proc/cpuinfo."""
    try:
        text = cpuinfo.read_text(encoding="ascii", errors="replace")
    except OSError:
        return frozenset()
    match = re.search(r"^flags\s*:\s*(.*)$", text, re.MULTILINE)
    if match is None:
        return frozenset()
    return frozenset(set(match.group(1).split()) & set(_ISA_NAMES))


# ONEDNN_MAX_CPU_ISA caps the instructions OpenVINO's CPU plugin uses (it honours the variable: MiniLM
# static int8 on a Xeon with AMX ran 279 ms per 32x128 batch natively, 845 ms capped at AVX2); the flags
# each cap leaves usable. Unknown values and ALL leave every flag.
_ISA_CAPS: dict[str, frozenset[str]] = {
    "SSE41": frozenset(), "AVX": frozenset(), "AVX2": frozenset({"avx2"}),
    "AVX2_VNNI": frozenset({"avx2", "avx_vnni"}), "AVX2_VNNI_2": frozenset({"avx2", "avx_vnni"}),
    "AVX512_CORE": frozenset({"avx2", "avx512f"}),
    "AVX512_CORE_VNNI": frozenset({"avx2", "avx512f", "avx512_vnni"}),
    "AVX512_CORE_BF16": frozenset({"avx2", "avx512f", "avx512_vnni", "avx512_bf16"}),
    "AVX512_CORE_FP16": frozenset({"avx2", "avx512f", "avx512_vnni", "avx512_bf16"}),
    "AVX512_CORE_AMX": frozenset({"avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8"}),
}


def isa_cap(environ: Mapping[str, str] = os.environ) -> str | None:
    """The ``ONEDNN_MAX_CPU_ISA`` value that limits the CPU plugin, or None when nothing is capped."""
    value = environ.get("ONEDNN_MAX_CPU_ISA", "").strip().upper()
    return value if value in _ISA_CAPS else None


def _capped(flags: frozenset[str], capabilities: tuple[str, ...],
            cap: str | None) -> tuple[frozenset[str], tuple[str, ...]]:
    """The flags and capabilities the plugin can use under ``cap`` (OPTIMIZATION_CAPABILITIES still lists
    BF16 under an AVX2 cap, but the plugin then has no bf16 instructions)."""
    if cap is None:
        return flags, capabilities
    flags = flags & _ISA_CAPS[cap]
    if not flags & {"avx512_bf16", "amx_bf16"}:
        capabilities = tuple(c for c in capabilities if c != "BF16")
    return flags, capabilities


def available_devices(core: ov.Core) -> list[str]:
    """Physical devices, e.g. ``["CPU", "GPU.0", "GPU.1"]``."""
    return list(core.available_devices)


def device_info(core: ov.Core, name: str) -> DeviceInfo:
    """Name, marketing name and optimisation capabilities of one physical device."""

    def prop(key: str) -> object:
        try:
            return core.get_property(name, key)
        except RuntimeError:  # not every plugin reports every property
            return None

    full = prop("FULL_DEVICE_NAME")
    caps = prop("OPTIMIZATION_CAPABILITIES")
    capabilities = tuple(str(c) for c in caps) if isinstance(caps, (list, tuple)) else ()
    if not name.startswith("CPU"):
        return DeviceInfo(name, str(full) if full else name, capabilities)
    flags, capabilities = _capped(_cpu_flags(), capabilities, isa_cap())
    return DeviceInfo(name, str(full) if full else name, capabilities, flags)


def describe_devices(core: ov.Core) -> list[DeviceInfo]:
    return [device_info(core, name) for name in available_devices(core)]


def _physical(device: str) -> list[str]:
    """The physical devices a device string names: "HETERO:GPU,CPU" -> ["GPU", "CPU"]."""
    head, _, rest = device.partition(":")
    if head.upper() in _VIRTUAL:
        return [d.strip() for d in rest.split(",") if d.strip()]
    return [device]


def check_device(core: ov.Core, device: str) -> None:
    """Raise ``ConfigError`` naming the available devices when ``device`` is not on this machine.

    ``GPU`` matches ``GPU.0``; ``AUTO`` alone matches anything; ``AUTO:GPU,CPU`` needs both.
    """
    available = available_devices(core)
    for wanted in _physical(device):
        key = wanted.upper()
        if not any(a.upper() == key or a.upper().startswith(key + ".") for a in available):
            listed = ", ".join(available) or "none"
            raise ConfigError(
                f"device {wanted} is not available on this machine (available: {listed})")


def primary_device(core: ov.Core, device: str) -> str:
    """The physical device that will mostly run a model compiled for ``device``."""
    physical = _physical(device)
    if physical:
        return physical[0]
    available = available_devices(core)
    return available[0] if available else "CPU"


def suggest(info: DeviceInfo) -> Advice:
    """Which weight format and hint suit an embeddings model on this device.

    On CPUs without VNNI/AMX, int8 activations are slower than fp32, so weight-only int8
    (what ``ovembed export --weight_format int8`` does) is the choice for a 4x smaller model at
    about fp32 speed. With VNNI/AMX, int8 matrix multiplies run 2-4x faster than fp32, and
    AMX/AVX512-BF16 CPUs also run fp32 models in bf16 by default when allowed. With VNNI and
    AVX512-BF16 but no AMX, weight-only int8 already computes in bf16 and static int8 was faster on
    one such CPU and slower on another, so weight-only int8 is suggested with a pointer to measure.
    """
    if not info.name.startswith("CPU"):
        return Advice("fp16", "THROUGHPUT",
                      f"{info.name} computes in fp16; fp16 weights halve the model at no "
                      "accuracy cost")
    if info.int8_accelerated:
        amx = "amx_int8" in info.cpu_flags
        if not amx and info.bf16_accelerated:
            # Weight-only int8 computes in bf16 here, and whether int8 activations beat that
            # depends on the CPU: MiniLM bulk tokens/s static / weight-only int8, raw engine,
            # 2 cores: Zen 4 x1.36 (19,512 vs 14,360), a Xeon with VNNI and AVX512-BF16 but no
            # AMX x0.82-0.92 in two runs (10,969 vs 13,014; 10,390 vs 11,353), single queries no faster.
            return Advice("int8", "LATENCY",
                          "this CPU has VNNI and fast bf16 but no AMX: weight-only int8 computes in bf16, and "
                          "static int8 (--quantization static) was 1.36x as fast on one such CPU (Zen 4) and "
                          "0.82-0.92x on another (Xeon without AMX): measure both with "
                          "python -m benchmarks.engine_ceiling --formats int8,static")
        measured = ("; measured on 2 Sapphire Rapids cores (MiniLM): ~2x fp32's bulk tokens/s and "
                    "~2.5x faster short queries, weight-only int8 (bf16 compute) about as fast for "
                    "bulk; ovembed serve runs large int8 batches on extra streams by itself") if amx else ""
        return Advice("int8", "LATENCY",
                      f"this CPU has int8 dot-product instructions{' (AMX)' if amx else ' (VNNI)'}: "
                      "static int8 (weights and activations) is 2-4x faster than fp32 and the model "
                      f"is 4x smaller{measured}",
                      quantization="static")
    return Advice("int8", "LATENCY",
                  "this CPU has no VNNI/AMX: int8 activations (--quantization static) would be "
                  "slower than fp32, but weight-only int8 makes the model 4x smaller at about fp32 speed")


def instructions(info: DeviceInfo) -> list[str]:
    """The CPU's int8/bf16-relevant instruction sets, readable: ``["AVX2", "AVX-512 VNNI", ...]``."""
    return [label for flag, label in _ISA_NAMES.items() if flag in info.cpu_flags]


def _int8_note(info: DeviceInfo) -> str:
    if not info.name.startswith("CPU"):
        return "native" if "INT8" in info.capabilities else "not reported"
    if "amx_int8" in info.cpu_flags:
        return "fast (AMX): int8 matrix multiplies run 2-4x faster than fp32"
    if info.int8_accelerated:
        return "fast (VNNI): int8 matrix multiplies run about 2x faster than fp32"
    return ("no VNNI/AMX: weight-only int8 runs at about fp32 speed (4x smaller); "
            "int8 activations (full quantization) would be slower than fp32")


def _bf16_note(info: DeviceInfo) -> str | None:
    if not info.bf16_accelerated:
        return None
    how = "AMX" if "amx_bf16" in info.cpu_flags else "AVX-512 BF16"
    return (f"fast ({how}): fp32/fp16 models can compute in bf16, ~3x faster at cosine ~0.9999, with "
            '"INFERENCE_PRECISION_HINT": "bf16" in plugin_config (ovembed keeps f32 for fp32 models otherwise)')


def _compute_note(info: DeviceInfo) -> str:
    """What ``--inference_precision auto`` picks on this device, and why."""
    if not info.name.startswith("CPU"):
        return "--inference_precision auto: the device's default (override with f32, bf16 or f16)"
    default = "bf16" if info.bf16_accelerated else "f32"
    return ("--inference_precision auto: fp32/fp16 models in f32 (a vector does not depend on its batch); "
            f"int8/int4 models in the device's default, {default} on this CPU"
            + (" (batch-dependent up to ~2e-3: pass f32 to avoid)" if default == "bf16" else ""))


def devices_report(infos: list[DeviceInfo]) -> str:
    """What ``ovembed devices`` prints: each device, its capabilities and what suits it."""
    if not infos:
        return "OpenVINO found no device on this machine."
    blocks = []
    for info in infos:
        advice = suggest(info)
        precisions = [c for c in _PRECISIONS if c in info.capabilities]
        others = [c for c in info.capabilities if c not in _PRECISIONS]
        lines = [f"{info.name}: {info.full_name}",
                 f"  precisions:    {', '.join(precisions) or 'not reported'}"
                 + (f" (also {', '.join(others)})" if others else "")]
        if info.name.startswith("CPU"):
            cap = isa_cap()
            lines.append(f"  instructions:  {', '.join(instructions(info)) or 'none of AVX2/AVX-512/VNNI/AMX'}"
                         + (f" (capped by ONEDNN_MAX_CPU_ISA={cap}; the plugin honours it)" if cap else ""))
        lines.append(f"  int8:          {_int8_note(info)}")
        bf16 = _bf16_note(info)
        if bf16:
            lines.append(f"  bf16:          {bf16}")
        lines.append(f"  compute:       {_compute_note(info)}")
        lines += [f"  suggested:     ovembed export {advice.export_flags}; "
                  f"PERFORMANCE_HINT {advice.performance_hint}",
                  f"                 ({advice.reason})"]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def device_summary(info: DeviceInfo, weights: str | None = None, compute: str | None = None) -> str:
    """One log line: the device, its capabilities and the advice for a model with ``weights``
    (e.g. "fp32") computing in ``compute`` (INFERENCE_PRECISION_HINT, e.g. "f32")."""
    advice = suggest(info)
    caps = [c for c in _PRECISIONS if c in info.capabilities]
    text = f"{info.name} ({info.full_name}): {', '.join(caps) or 'capabilities not reported'}"
    isa = instructions(info)
    if isa:
        text += f"; {', '.join(isa)}"
    if weights == advice.weight_format:
        text += f"; weights {weights} suit it ({advice.reason})"
    else:
        text += (f"; suggested weights {advice.weight_format}, PERFORMANCE_HINT {advice.performance_hint} "
                 f"({advice.reason})")
    if weights in ("fp32", "fp16") and compute == "f32" and info.bf16_accelerated:
        text += '; or allow bf16 compute (~3x faster, cosine ~0.9999) with "INFERENCE_PRECISION_HINT": "bf16"'
    return text
