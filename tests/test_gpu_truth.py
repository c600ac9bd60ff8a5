"""The ground-truth TSV of real GPU runs (issue 23): typed rows, one line per bad row, the peers'
scores.

Small files are written in ``tmp_path`` from one good row; the real file
(``../shared/gpu-truth/xmem-dev.tsv``) must load whole and give the figures its README states.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import require
from revprof.bench.gpu_truth import (
    ALLOWANCE_QUANTILE,
    ESTIMATORS,
    OUTSIDE_ALLOCATOR_BYTES,
    REQUIRED_COLUMNS,
    ModelCall,
    RowPrediction,
    TruthRow,
    estimator_summary,
    fit_allowances,
    miss_part,
    miss_table,
    parse_model_call,
    peer_summaries,
    predict_row,
    quantile,
    read_truth_rows,
    relative_error,
    row_recipe,
    score_rows,
    truth_record,
)
from revprof.errors import RevprofError
from revprof.nn._torchvision import ensure_torchvision_importable

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


# ---- reproducing and scoring a row --------------------------------------------------------------

def _one(tmp_path, **cells: str) -> TruthRow:
    truth = read_truth_rows(_write(tmp_path / "row.tsv", [{**GOOD, **cells}]))
    assert truth.errors == (), truth.errors
    return truth.rows[0]


def _images(batch: int, size: int = 86) -> dict[str, str]:
    return {"batch": str(batch), "input_shape": f"[{batch},3,{size},{size}] float32 (labels int64 [{batch}])"}


@pytest.mark.parametrize(("mode", "zero_grad"), [("0", "start"), ("1", "after_loss"), ("2", "end"),
                                                 ("null", "after_loss")])
def test_row_recipe_is_the_measured_loop(tmp_path, mode, zero_grad):
    row = _one(tmp_path, optimizer="torch.optim.Adam", zero_grad_mode=mode)
    recipe = row_recipe(row)
    assert (recipe.optimizer, recipe.lr, recipe.loss, recipe.targets) == ("adam", 0.001, "ce", "labels")
    assert recipe.zero_grad == zero_grad and recipe.set_to_none
    assert (recipe.after_step, recipe.transfer, recipe.precision) == ("max", "per_step", "fp32")
    assert recipe.batch == row.batch and recipe.steps == row.iterations + 1  # steps 0..iterations
    # every argument but lr at PyTorch's defaults (the paper's preset would add a weight decay)
    assert recipe.optimizer_kwargs() == {"lr": 0.001, "foreach": True}
    assert recipe.hyperparameters()["weight_decay"] == 0.0


@pytest.mark.parametrize(("cells", "column", "problem"), [
    pytest.param({"optimizer": "torch.optim.NAdam"}, "optimizer", "must be one of the recipe's", id="optimizer"),
    pytest.param({"gpu_name": "NVIDIA GeForce RTX 9999"}, "gpu_name", "must be a card revprof knows", id="card"),
    pytest.param({"input_shape": "[64,3,86,86] float16 (labels int64 [64])"}, "input_shape",
                 "must be float32 images with int64 class labels", id="dtype"),
    pytest.param(_images(2000), "batch", "recipe.batch must be from 1 to", id="batch"),
])
def test_a_row_revprof_cannot_reproduce_is_one_line(tmp_path, cells, column, problem):
    row = _one(tmp_path, **cells)
    with pytest.raises(RevprofError) as raised:
        predict_row(row)
    message = str(raised.value)
    assert message.startswith(f"line {row.line}: ") and problem in message and "\n" not in message
    assert raised.value.field == column


def test_quantile_is_linear_between_sorted_values():
    import statistics

    values = [5.0, -3.0, 10.0, 0.0, 7.5, 2.0]
    for q in (0.1, 0.25, 0.5, 0.6, 0.9):
        expected = statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1]
        assert quantile(values, q) == pytest.approx(expected)
    assert (quantile(values, 0.0), quantile(values, 1.0)) == (-3.0, 10.0)
    with pytest.raises(RevprofError):
        quantile([], 0.5)


def _prediction(line: int, allocated: int, reserved: int, oom: bool = False) -> RowPrediction:
    return RowPrediction(line=line, allocated_bytes=allocated, reserved_bytes=reserved,
                         unlimited_reserved_bytes=reserved, workspace_bytes=0, usable_bytes=10**10,
                         oom=oom, oom_requested_bytes=None, alloc_retries=0, peak_phase="forward",
                         peak_step=1, seconds=0.5)


def test_allowance_is_one_quantile_per_card_over_rows_that_ran(tmp_path):
    mib = 2**20
    cells = [(3060, 1000, 900), (3060, 2000, 1950), (3060, 3000, 3100), (4060, 1000, 800), (4060, 1500, 1400)]
    rows = []
    for card, ground, _ in cells:
        gpu, total = ("NVIDIA GeForce RTX 3060", "12622168064") if card == 3060 else (
            "NVIDIA GeForce RTX 4060", "8318222336")
        rows.append({**GOOD, "gpu_name": gpu, "total_gpu_memory": total, "ground_bytes": str(ground * mib)})
    rows.append({**GOOD, "real_oom": "true", "ground_bytes": str(99 * mib)})  # ignored by the fit
    truth = read_truth_rows(_write(tmp_path / "truth.tsv", rows)).rows
    predictions = {r.line: _prediction(r.line, 1, reserved * mib)
                   for r, (_, _, reserved) in zip(truth, cells)}
    predictions[truth[-1].line] = _prediction(truth[-1].line, 1, 10**9, oom=True)
    scored = score_rows(truth, predictions, {})
    residuals_3060, residuals_4060 = [100, 50, -100], [200, 100]
    assert fit_allowances(scored, q=0.5) == {"rtx3060": 50 * mib, "rtx4060": 150 * mib}
    assert fit_allowances(scored) == {"rtx3060": round(quantile(residuals_3060, ALLOWANCE_QUANTILE)) * mib,
                                      "rtx4060": round(quantile(residuals_4060, ALLOWANCE_QUANTILE)) * mib}
    again = score_rows(truth, predictions, fit_allowances(scored, q=0.5))
    assert [s.predicted_bytes for s in again[:2]] == [950 * mib, 2000 * mib]


def test_record_has_the_summary_a_script_reads_and_names_the_part_missed(tmp_path):
    mib = 2**20
    ran = {**GOOD, "ground_bytes": str(1000 * mib), "xmem_est_bytes": str(1050 * mib)}
    rows = read_truth_rows(_write(tmp_path / "truth.tsv", [
        ran, ran, ran, {**ran, "ground_bytes": str(7000 * mib), "real_oom": "true", "xmem_pred_oom": "true"}])).rows
    predictions = {2: _prediction(2, 600 * mib, 1100 * mib),   # cache over-predicted
                   3: _prediction(3, 1050 * mib, 1200 * mib),  # tensors alone too many
                   4: _prediction(4, 500 * mib, 900 * mib),    # under
                   5: _prediction(5, 9000 * mib, 7000 * mib, oom=True)}
    scored = score_rows(rows, predictions, {"rtx4060": 0})
    assert [miss_part(s) for s in scored[:3]] == [("allocator", 100 * mib), ("allocated", 50 * mib),
                                                  ("allowance", -100 * mib)]
    record = json.loads(json.dumps(truth_record(scored, {"rtx4060": 0}, complete=True, source="t")))
    summary = record["summary"]
    assert summary["revprof"]["median_abs_rel_error"] == pytest.approx(0.1)
    assert summary["revprof"]["under_share"] == pytest.approx(1 / 3)
    assert summary["revprof"]["oom_accuracy"] == 1.0
    assert {"xmem", "dnnmem", "schedtune"} <= summary.keys()
    assert summary["xmem"]["median_abs_rel_error"] == pytest.approx(0.05)  # 1050 vs 1000
    row = record["rows"][0]
    assert row["revprof"]["predicted_bytes"] == 1100 * mib and row["measured_bytes"] == 1000 * mib
    assert row["xmem"]["relative_error"] == pytest.approx(0.05)
    table = miss_table(scored)
    assert "| 2 | rtx4060 | ResNet101 | SGD | 64 | +10.0 % | allocator | +100 MiB |" in table


def test_an_oom_run_is_predicted_oom_on_its_card_and_a_small_one_fits(tmp_path):
    require(ensure_torchvision_importable() != "not-installed", "torchvision is not installed")
    resnet18 = "torchvision.models.resnet18(weights=None, num_classes=10)"
    # 1024 images of 224x224 need some 21 GiB of tensors: more than the RTX 4060's 7.7 GiB
    # (two steps, iterations=1, keep it quick; the optimizer's state exists from the first)
    big = predict_row(_one(tmp_path, model_constructor=resnet18, iterations="1", **_images(1024, 224)))
    assert big.oom and big.oom_requested_bytes and big.reserved_bytes <= big.usable_bytes
    assert big.usable_bytes == 8318222336 - OUTSIDE_ALLOCATOR_BYTES
    small = predict_row(_one(tmp_path, model_constructor=resnet18, iterations="1", **_images(16)))
    assert not small.oom and small.allocated_bytes <= small.reserved_bytes == small.unlimited_reserved_bytes
    # resnet18's fc is a Linear: the cuBLAS workspace is in the prediction
    assert small.workspace_bytes == 8_519_680


@pytest.mark.slow  # ResNet101 at batch 399 on fake tensors: 10-20 s on 2 shared cores
def test_a_real_oom_row_is_predicted_oom():
    require(GPU_TRUTH.exists(), f"{GPU_TRUTH} is missing")
    require(ensure_torchvision_importable() != "not-installed", "torchvision is not installed")
    rows = {r.line: r for r in read_truth_rows(GPU_TRUTH).rows}
    row = rows[44]
    assert (row.model, row.batch, row.gpu_name, row.real_oom) == (
        "ResNet101", 399, "NVIDIA GeForce RTX 4060", True)
    assert predict_row(row).oom


@pytest.mark.slow  # a whole benchmark run in a fresh interpreter, two rows
def test_benchmark_script_writes_the_record_and_names_bad_rows(tmp_path):
    require(ensure_torchvision_importable() != "not-installed", "torchvision is not installed")
    small = {**GOOD, "model_constructor": "torchvision.models.mobilenet_v3_small(weights=None, num_classes=10)",
             **_images(4, 32)}
    rows = _write(tmp_path / "rows.tsv", [small, {**small, "ground_bytes": "lots"}])
    out = tmp_path / "out.json"
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, str(root / "benchmarks" / "gpu_truth.py"), "--rows", str(rows),
                           "--json", str(out)], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(root)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "skipped: rows.tsv line 3: column 'ground_bytes'" in done.stderr
    record = json.loads(out.read_text())
    assert record["complete"] and record["rows_predicted"] == 1
    assert set(record["summary"]) == {"revprof", "xmem", "dnnmem", "schedtune"}
    assert "| revprof |" in done.stdout
