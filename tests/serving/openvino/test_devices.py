"""``ovembed devices`` and the per-model device line of ``serve`` (ovembed/serving/openvino/devices.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ovembed import cli
from ovembed.serving.openvino import devices
from ovembed.serving.openvino.devices import DeviceInfo, device_info, device_summary, devices_report

ROOT = Path(__file__).resolve().parents[3]
PLAIN = DeviceInfo("CPU", "Old Xeon", ("FP32", "FP16", "INT8", "BIN"), frozenset({"avx2", "avx512f"}))
VNNI = DeviceInfo("CPU", "Cascade Lake", ("FP32", "FP16", "INT8"), frozenset({"avx2", "avx512f", "avx512_vnni"}))
AMX = DeviceInfo("CPU", "Sapphire Rapids", ("FP32", "FP16", "BF16", "INT8"),
                 frozenset({"avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8"}))
VNNI_BF16 = DeviceInfo("CPU", "EPYC Zen 4", ("FP32", "FP16", "BF16", "INT8"),
                       frozenset({"avx2", "avx512f", "avx512_vnni", "avx512_bf16"}))
GPU = DeviceInfo("GPU.0", "Intel(R) Arc(TM) A770 Graphics (dGPU)", ("FP32", "FP16", "INT8"))


def block(report: str, name: str) -> str:
    return next(b for b in report.split("\n\n") if b.startswith(f"{name}:"))


def test_report_explains_each_kind_of_device() -> None:
    report = devices_report([PLAIN, GPU])
    plain = block(report, "CPU")
    assert plain.splitlines()[0] == "CPU: Old Xeon"
    assert "precisions:    FP32, FP16, INT8 (also BIN)" in plain
    assert "instructions:  AVX2, AVX-512\n" in plain
    assert "no VNNI/AMX: weight-only int8 runs at about fp32 speed (4x smaller)" in plain
    assert "int8 activations (full quantization) would be slower than fp32" in plain
    assert "suggested:     ovembed export --weight_format int8; PERFORMANCE_HINT LATENCY" in plain
    assert "bf16:" not in plain
    gpu = block(report, "GPU.0")
    assert "Intel(R) Arc(TM) A770 Graphics" in gpu and "instructions:" not in gpu
    assert "--weight_format fp16; PERFORMANCE_HINT THROUGHPUT" in gpu

    vnni = devices_report([VNNI])
    assert "instructions:  AVX2, AVX-512, AVX-512 VNNI" in vnni
    assert "int8:          fast (VNNI)" in vnni and "bf16:" not in vnni
    assert "suggested:     ovembed export --weight_format int8 --quantization static;" in vnni
    assert "--quantization static;" not in plain and "(--quantization static) would be slower" in plain

    both = devices_report([VNNI_BF16])  # static int8 was faster on one such CPU, slower on another
    assert "suggested:     ovembed export --weight_format int8; PERFORMANCE_HINT LATENCY" in both
    assert "VNNI and fast bf16 but no AMX" in both and "--formats int8,static" in both

    amx = devices_report([AMX])
    assert "AVX-512 BF16, AMX-BF16, AMX-INT8" in amx
    assert "int8:          fast (AMX): int8 matrix multiplies run 2-4x faster than fp32" in amx
    assert 'bf16:          fast (AMX)' in amx and '"INFERENCE_PRECISION_HINT": "bf16"' in amx
    assert "--weight_format int8 --quantization static" in amx
    assert devices_report([]) == "OpenVINO found no device on this machine."


def test_serve_line_per_model() -> None:
    line = device_summary(AMX, "fp32", "f32")
    assert line.startswith("CPU (Sapphire Rapids): FP32, FP16, BF16, INT8; AVX2, AVX-512, AVX-512 VNNI")
    assert "suggested weights int8, PERFORMANCE_HINT LATENCY" in line
    assert 'allow bf16 compute (~3x faster, cosine ~0.9999) with "INFERENCE_PRECISION_HINT": "bf16"' in line
    suited = device_summary(PLAIN, "int8", "f32")
    assert "weights int8 suit it (this CPU has no VNNI/AMX" in suited and "bf16" not in suited
    assert "suggested weights fp16, PERFORMANCE_HINT THROUGHPUT" in device_summary(GPU, "int8", None)


class _Core:
    def __init__(self, props: dict[str, object]) -> None:
        self.props = props

    def get_property(self, device: str, key: str) -> object:
        if key not in self.props:
            raise RuntimeError(f"{device} does not report {key}")
        return self.props[key]


def test_cpu_flags_come_from_proc_cpuinfo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512_vnni amx_tile amx_int8 amx_bf16\n"
                       "processor\t: 1\nflags\t\t: fpu\n")
    assert devices._cpu_flags(cpuinfo) == {"avx2", "avx512f", "avx512_vnni", "amx_int8", "amx_bf16"}
    assert devices._cpu_flags(tmp_path / "missing") == frozenset()
    monkeypatch.setattr(devices, "_cpu_flags", lambda: frozenset({"avx_vnni"}))
    info = device_info(_Core({"FULL_DEVICE_NAME": "Core Ultra", "OPTIMIZATION_CAPABILITIES": ["FP32", "INT8"]}),
                       "CPU")
    assert info == DeviceInfo("CPU", "Core Ultra", ("FP32", "INT8"), frozenset({"avx_vnni"}))
    assert info.int8_accelerated
    bare = device_info(_Core({}), "NPU")
    assert bare == DeviceInfo("NPU", "NPU", ())


def test_cli_lists_this_machines_devices(capsys: pytest.CaptureFixture[str]) -> None:
    import openvino as ov

    core = ov.Core()
    assert cli.main(["devices"]) == cli.ExitCode.OK
    out = capsys.readouterr().out
    for name in core.available_devices:
        assert f"{name}: {core.get_property(name, 'FULL_DEVICE_NAME')}" in out
    assert "precisions:" in out and "suggested:     ovembed export --weight_format" in out


def test_devices_command_in_a_fresh_process() -> None:
    proc = subprocess.run([sys.executable, "-m", "ovembed", "devices"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("CPU: ") and "int8:" in proc.stdout


@pytest.mark.parametrize(("cap", "flags", "bf16", "quantization"), [
    (None, {"avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8"}, True, "static"),
    ("AVX2", {"avx2"}, False, "weight_only"),
    ("AVX512_CORE", {"avx2", "avx512f"}, False, "weight_only"),
    ("AVX512_CORE_VNNI", {"avx2", "avx512f", "avx512_vnni"}, False, "static"),
    ("AVX512_CORE_BF16", {"avx2", "avx512f", "avx512_vnni", "avx512_bf16"}, True, "weight_only"),
])
def test_onednn_isa_cap_changes_what_the_device_can_do_and_the_advice(
        monkeypatch: pytest.MonkeyPatch, cap: str | None, flags: set[str], bf16: bool, quantization: str) -> None:
    """ONEDNN_MAX_CPU_ISA (which the CPU plugin honours) emulates a smaller CPU: the flags, BF16 and the
    export advice follow the cap, here on an AMX Xeon's flags."""
    amx = frozenset({"avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8"})
    monkeypatch.setattr(devices, "_cpu_flags", lambda: amx)
    if cap is None:
        monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    else:
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap.lower())
    info = device_info(_Core({"FULL_DEVICE_NAME": "Xeon", "OPTIMIZATION_CAPABILITIES": ["FP32", "BF16", "INT8"]}),
                       "CPU")
    assert info.cpu_flags == (amx if cap is None else flags)
    assert info.bf16_accelerated is bf16 and ("BF16" in info.capabilities) is bf16
    assert devices.suggest(info).quantization == quantization
    report = devices.devices_report([info])
    assert (f"capped by ONEDNN_MAX_CPU_ISA={cap}" in report) is (cap is not None)


def test_unknown_isa_cap_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "ALL")
    assert devices.isa_cap() is None
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "avx2")
    assert devices.isa_cap() == "AVX2"
