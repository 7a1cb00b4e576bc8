"""--extra_quantization_params: optimum-cli's weight-compression options mapped onto NNCF (quantize.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ovembed.config import ExportConfig, WeightFormat
from ovembed.errors import InvalidInput
from ovembed.export.quantize import ACCEPTED_OPTIONS, _nncf_kwargs, parse_extra_params


def test_every_weight_compression_option_maps_onto_nncf(tmp_path: Path) -> None:
    import nncf

    texts = tmp_path / "texts.txt"
    texts.write_text("one\ntwo\n")
    params = parse_extra_params(f"--awq --scale-estimation --gptq --dataset {texts} --num-samples 64 "
                                "--sensitivity-metric hessian_input_activation --group-size 64 --ratio 0.8 --sym "
                                "--all-layers --backup-precision int8_sym")
    params.check(WeightFormat.INT4)
    kwargs = _nncf_kwargs(WeightFormat.INT4, params)
    assert kwargs == {"mode": nncf.CompressWeightsMode.INT4_SYM, "group_size": 64, "ratio": 0.8, "all_layers": True,
                      "backup_mode": nncf.BackupMode.INT8_SYM, "awq": True, "scale_estimation": True, "gptq": True,
                      "sensitivity_metric": nncf.SensitivityMetric.HESSIAN_INPUT_ACTIVATION}
    assert params.num_samples == 64 and params.dataset == str(texts)
    assert parse_extra_params("--scale_estimation --num_samples 3").scale_estimation  # underscores too


def test_other_options_are_refused_with_the_accepted_list() -> None:
    with pytest.raises(InvalidInput) as info:
        parse_extra_params("--quant-mode int8 --sym")
    message = info.value.message
    assert message.startswith("--extra_quantization_params: unrecognized arguments: --quant-mode int8 (accepted: ")
    assert all(option in message for option in ACCEPTED_OPTIONS)


@pytest.mark.parametrize(("text", "weight_format", "message"), [
    ("--awq --dataset builtin", WeightFormat.INT8, "--awq apply to --weight-format int4"),
    ("--ratio 0.5 --group-size 32", WeightFormat.FP16, "--ratio, --group-size apply to --weight-format int4"),
    ("--awq", WeightFormat.INT4, "need --dataset"),
    ("--sensitivity-metric mean_activation_variance", WeightFormat.INT4, "need --dataset"),
    ("--scale-estimation --dataset wikitext2", WeightFormat.INT4, "--dataset wikitext2: not 'builtin'"),
    ("--num-samples 0", WeightFormat.INT4, "--num-samples must be at least 1"),
])
def test_impossible_combinations(text: str, weight_format: WeightFormat, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse_extra_params(text).check(weight_format)


def test_data_aware_int4_export(tiny_source, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from ovembed.export.pipeline import export_model

    cfg = ExportConfig(source_model=str(tiny_source("bert-mean")), model_name="awq", model_repository_path=tmp_path,
                       weight_format=WeightFormat.INT4, min_cosine=0.5,
                       extra_quantization_params="--awq --scale-estimation --dataset builtin --num-samples 16 "
                                                 "--group-size 16 --ratio 1.0")
    export_model(cfg)
    record = json.loads((tmp_path / "awq" / "ovembed_model.json").read_text())
    nncf_args = record["quantization"]["nncf"]
    assert nncf_args["awq"] == "True" and nncf_args["scale_estimation"] == "True"
    assert nncf_args["dataset"] == "16 texts from builtin" and nncf_args["subset_size"] == "16"
    assert record["quantization"]["dataset"] == "builtin"
