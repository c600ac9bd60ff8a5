"""The ground-truth TSV of real GPU runs (issue 23): typed rows, one line per bad row, the peers'
scores.

Small files are written in ``tmp_path`` from one good row; the real file
(``../shared/gpu-truth/xmem-dev.tsv``) must load whole and give the figures its README states.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import require
from revprof.bench.gpu_truth import (
    ESTIMATORS,
    REQUIRED_COLUMNS,
    ModelCall,
    TruthRow,
    estimator_summary,
    parse_model_call,
    peer_summaries,
    read_truth_rows,
    relative_error,
)
from revprof.errors import RevprofError

GPU_TRUTH = Path(__file__).resolve().parents[2] / "shared" / "gpu-truth" / "xmem-dev.tsv"

GOOD = {
    "source_path": "plot/data/x/ResNet101_SGD_64_0_abcd/NVIDIA-GeForce-RTX-4060/evaluation_result.json",
    "model": "ResNet101",
    "model_constructor": "torchvision.models.resnet101(weights=None)",
    "optimizer": "torch.optim.SGD",
    "lr": "0.001",
    "batch": "64",
    "input_shape": "[64,3,86,86] float32 (labels int64 [64])",
    "gpu_name": "NVIDIA GeForce RTX 4060",
    "total_gpu_memory": "8318222336",
    "ground_bytes": "2000000000",
    "real_oom": "false",
    "xmem_est_bytes": "2100000000",
    "dnnmem_est_bytes": "1500000000",
    "schedtune_est_bytes": "1800000000.5",
    "llmem_est_bytes": "",
    "zero_grad_mode": "0",
    "iterations": "4",
    "notes": "set=A002; pipeline=G2",
    "set": "A002",
    "pipeline": "G2",
    "device_index": "0",
    "xmem_pred_oom": "false",
    "xmem_v2_oom": "false",
    "xmem_v2_cap_bytes": "2100000000",
    "dnnmem_pred_oom": "false",
    "dnnmem_v2_oom": "true",
    "dnnmem_v2_cap_bytes": "1500000000",
    "schedtune_pred_oom": "true",
    "schedtune_v2_oom": "",
    "schedtune_v2_cap_bytes": "",
}


def _write(path: Path, rows: list[dict[str, str]], columns: list[str] | None = None) -> Path:
    columns = columns or list(GOOD)
    lines = ["\t".join(columns)] + ["\t".join(row[c] for c in columns) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_good_row_is_typed(tmp_path):
    truth = read_truth_rows(_write(tmp_path / "truth.tsv", [GOOD, {**GOOD, "zero_grad_mode": "null"}]))
    assert truth.errors == ()
    row, unrecorded = truth.rows
    assert isinstance(row, TruthRow) and row.line == 2 and unrecorded.line == 3
    assert row.model_call == ModelCall("resnet101", (("weights", None),))
    assert (row.optimizer, row.lr, row.batch, row.iterations) == ("SGD", 0.001, 64, 4)
    assert (row.input_shape, row.input_dtype, row.label_shape, row.label_dtype) == ((3, 86, 86), "float32", (), "int64")
    assert (row.gpu_name, row.total_gpu_memory, row.ground_bytes, row.real_oom) == (
        "NVIDIA GeForce RTX 4060", 8318222336, 2000000000, False)
    assert (row.zero_grad_mode, unrecorded.zero_grad_mode) == (0, None)
    assert (row.set_name, row.pipeline) == ("A002", "G2")
    assert row.peer("schedtune").est_bytes == 1800000000.5
    assert (row.dnnmem.pred_oom, row.dnnmem.v2_oom, row.dnnmem.v2_cap_bytes) == (False, True, 1.5e9)
    assert (row.schedtune.pred_oom, row.schedtune.v2_oom, row.schedtune.v2_cap_bytes) == (True, None, None)


BAD_CELLS = [
    pytest.param("ground_bytes", "7.6 GB", "must be a positive whole number of bytes", id="non-numeric-bytes"),
    pytest.param("ground_bytes", "", "must be a positive whole number", id="empty-bytes"),
    pytest.param("xmem_est_bytes", "n/a", "must be a positive number of bytes", id="non-numeric-estimate"),
    pytest.param("model_constructor", "timm.create_model('resnet101')", "must be a call torchvision.models.NAME",
                 id="other-library"),
    pytest.param("model_constructor", "torchvision.models.resnet101", "must be a call", id="not-a-call"),
    pytest.param("model_constructor", "torchvision.models.resnet101(None)", "keyword arguments only",
                 id="positional"),
    pytest.param("model_constructor", "torchvision.models.resnet101(weights=ResNet101_Weights.DEFAULT)",
                 "weights= must be a literal", id="non-literal"),
    pytest.param("model_constructor", "torchvision.models.resnet101(weights='IMAGENET1K_V2')", "weights=None",
                 id="pretrained"),
    pytest.param("model_constructor", "torchvision.models.resnet101(weights=None", "it does not parse",
                 id="syntax"),
    pytest.param("optimizer", "torch.optim.Adamm", "must be a torch.optim optimizer class", id="unknown-optimizer"),
    pytest.param("optimizer", "Adam", "must be a torch.optim optimizer class", id="unqualified-optimizer"),
    pytest.param("lr", "-0.1", "must be a positive number", id="negative-lr"),
    pytest.param("batch", "0", "must be a positive whole number", id="zero-batch"),
    pytest.param("real_oom", "yes", "must be true or false", id="bad-bool"),
    pytest.param("xmem_v2_oom", "maybe", "must be true or false, or empty", id="bad-optional-bool"),
    pytest.param("zero_grad_mode", "3", "must be one of 0, 1, 2 or null", id="bad-zero-grad-mode"),
    pytest.param("input_shape", "[64,3,86] float32 (labels int64 [64])", "must be images [B,C,H,W]",
                 id="not-an-image-batch"),
    pytest.param("input_shape", "[32,3,86,86] float32 (labels int64 [32])", "with B the batch 64",
                 id="batch-disagrees"),
    pytest.param("input_shape", "[64,3,86,86] float99 (labels int64 [64])", "must name torch dtypes ('float99' is not one)",
                 id="bad-dtype"),
    pytest.param("input_shape", "64x3x86x86", "must be like '[B,C,H,W] float32 (labels int64 [B])'",
                 id="shape-format"),
]


@pytest.mark.parametrize(("column", "value", "problem"), BAD_CELLS)
def test_bad_cell_is_one_line_naming_line_and_column(tmp_path, column, value, problem):
    truth = read_truth_rows(_write(tmp_path / "truth.tsv", [GOOD, {**GOOD, column: value}, GOOD]))
    assert [row.line for row in truth.rows] == [2, 4]
    (error,) = truth.errors
    message = str(error)
    assert message.startswith(f"truth.tsv line 3: column {column!r} ") and problem in message, message
    assert message.endswith(f"got {value!r}") and "\n" not in message
    assert error.field == column


def test_constructor_is_never_evaluated(tmp_path):
    marker = tmp_path / "ran"
    call = f"torchvision.models.resnet101(weights=None, x=open({str(marker)!r}, 'w'))"
    truth = read_truth_rows(_write(tmp_path / "truth.tsv", [{**GOOD, "model_constructor": call}]))
    assert truth.rows == () and "x= must be a literal" in str(truth.errors[0])
    assert not marker.exists()


def test_three_bad_rows_report_three_lines_and_the_good_rows_load(tmp_path):
    rows = [GOOD, {**GOOD, "real_oom": "TRUE"}, {**GOOD, "ground_bytes": "lots"}, GOOD,
            {**GOOD, "model_constructor": "os.system('true')"}, GOOD]
    truth = read_truth_rows(_write(tmp_path / "truth.tsv", rows))
    assert [row.line for row in truth.rows] == [2, 5, 7]
    assert [(e.field, str(e).split(":")[0]) for e in truth.errors] == [
        ("real_oom", "truth.tsv line 3"), ("ground_bytes", "truth.tsv line 4"),
        ("model_constructor", "truth.tsv line 6")]


def test_first_bad_column_of_a_row_is_named(tmp_path):
    truth = read_truth_rows(_write(tmp_path / "truth.tsv", [{**GOOD, "lr": "fast", "ground_bytes": "x"}]))
    assert truth.errors[0].field == "lr"


def test_missing_column_fails_the_file(tmp_path):
    columns = [c for c in GOOD if c != "ground_bytes"]
    with pytest.raises(RevprofError) as raised:
        read_truth_rows(_write(tmp_path / "truth.tsv", [GOOD], columns))
    assert str(raised.value) == "truth.tsv line 1: the header lacks the column(s) 'ground_bytes'"


def test_short_row_is_named(tmp_path):
    path = _write(tmp_path / "truth.tsv", [GOOD])
    path.write_text(path.read_text() + "\t".join(list(GOOD.values())[:5]) + "\n")
    truth = read_truth_rows(path)
    assert len(truth.rows) == 1
    assert [str(e) for e in truth.errors] == [f"truth.tsv line 3: has 5 fields; the header has {len(GOOD)}"]


@pytest.mark.parametrize("content", ["", None], ids=["empty", "missing"])
def test_unreadable_or_empty_file(tmp_path, content):
    path = tmp_path / "truth.tsv"
    if content is not None:
        path.write_text(content)
    with pytest.raises(RevprofError, match="truth.tsv"):
        read_truth_rows(path)


def test_model_call_keeps_keywords_in_order():
    call = parse_model_call("torchvision.models.mobilenet_v3_small(weights=None, num_classes=10)")
    assert call == ModelCall("mobilenet_v3_small", (("weights", None), ("num_classes", 10)))
    assert call.kwargs_dict() == {"weights": None, "num_classes": 10}
    assert parse_model_call(call.text()) == call


def _row(ground: int, estimate: float, real_oom: bool = False, pred_oom: bool = False) -> dict[str, str]:
    flag = {True: "true", False: "false"}
    return {**GOOD, "ground_bytes": str(ground), "xmem_est_bytes": str(estimate),
            "real_oom": flag[real_oom], "xmem_pred_oom": flag[pred_oom]}


def test_estimator_summary_scores_non_oom_rows_and_oom_on_all(tmp_path):
    rows = read_truth_rows(_write(tmp_path / "truth.tsv", [
        _row(100, 90), _row(100, 120), _row(200, 210), _row(300, 1, real_oom=True, pred_oom=True),
        _row(400, 1, real_oom=True, pred_oom=False)])).rows
    xmem = peer_summaries(rows)[0]
    errors = sorted(abs(relative_error(e, g)) for e, g in ((90, 100), (120, 100), (210, 200)))
    assert xmem.name == "xMem" and xmem.scored_rows == 3 and xmem.oom_rows == 5
    assert xmem.median_abs_relative_error == pytest.approx(errors[1])
    assert xmem.under_share == pytest.approx(1 / 3)
    assert xmem.oom_accuracy == pytest.approx(4 / 5)  # the second OOM row was not predicted
    with pytest.raises(RevprofError, match="none of the 2 rows"):
        estimator_summary("mine", rows[3:], lambda r: 1.0, lambda r: True)


def test_real_file_loads_every_row_and_gives_the_readme_figures():
    require(GPU_TRUTH.exists(), f"{GPU_TRUTH} is missing")
    truth = read_truth_rows(GPU_TRUTH)
    assert truth.errors == () and len(truth.rows) == 120
    assert {r.gpu_name for r in truth.rows} == {"NVIDIA GeForce RTX 3060", "NVIDIA GeForce RTX 4060"}
    assert {r.model_call.builder for r in truth.rows} == {
        "convnext_tiny", "mobilenet_v2", "mobilenet_v3_small", "regnet_x_400mf", "resnet101", "vgg16"}
    small = {r.model_call for r in truth.rows if r.model_call.builder == "mobilenet_v3_small"}
    assert small == {ModelCall("mobilenet_v3_small", (("weights", None), ("num_classes", 10)))}
    summaries = {s.name: s for s in peer_summaries(truth.rows)}
    # ../shared/gpu-truth/README.md: "On these 106 non-OOM rows the median |estimate - ground| /
    # ground is 1.7 % for xMem, 29 % for DNNMem, 11 % for SchedTune."
    assert {s.scored_rows for s in summaries.values()} == {106}
    assert {name: round(100 * s.median_abs_relative_error) if name != "xMem"
            else round(100 * s.median_abs_relative_error, 1) for name, s in summaries.items()} == {
        "xMem": 1.7, "DNNMem": 29, "SchedTune": 11}
    assert all(0 < s.oom_accuracy <= 1 and s.oom_rows == 120 for s in summaries.values())


def test_every_required_column_is_in_the_real_header():
    require(GPU_TRUTH.exists(), f"{GPU_TRUTH} is missing")
    header = GPU_TRUTH.read_text().splitlines()[0].split("\t")
    assert set(REQUIRED_COLUMNS) <= set(header)
    assert all(f"{name}_est_bytes" in header for name in ESTIMATORS)
