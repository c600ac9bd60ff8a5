"""torchvision's models on a CPU-only torch whose torchvision wheel's compiled operators do not
load (issue 23): ``revprof.nn._torchvision`` makes ``torchvision.models`` importable there and
does nothing where torchvision imports by itself.

The shim leans on torchvision's private behaviour; the tests that read torchvision's own
``_meta_registrations.py`` fail loudly when a new torchvision registers an operator the shim does
not define or changes an operator's arguments. ``make test`` installs ``revprof[torchvision]``.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

from conftest import require
from revprof.errors import RevprofError
from revprof.nn._torchvision import SCHEMAS, ensure_torchvision_importable, operator_name
from revprof.nn.factory import model_spec

ROOT = Path(__file__).resolve().parents[1]
INPUT = (2, 3, 86, 86)  # the ground-truth runs' images, two of them


def _torchvision_dir() -> Path:
    spec = importlib.util.find_spec("torchvision")
    require(spec is not None, "torchvision is not installed (make test installs revprof[torchvision])")
    return Path(next(iter(spec.submodule_search_locations)))


@pytest.fixture(scope="module")
def models():
    _torchvision_dir()
    state = ensure_torchvision_importable()
    assert state in ("untouched", "stubbed")
    import torchvision.models

    return torchvision.models


def _python(code: str) -> dict:
    """Run ``code`` in a fresh interpreter (operator registrations are process-wide); its last
    stdout line is JSON."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


PLAIN_IMPORT = """
import json
try:
    import torchvision
    print(json.dumps({"imports": True, "compiled": torchvision.extension._has_ops()}))
except RuntimeError as error:
    print(json.dumps({"imports": False, "error": str(error).splitlines()[0]}))
"""


@pytest.fixture(scope="module")
def plain_import() -> dict:
    """What ``import torchvision`` does here without revprof."""
    _torchvision_dir()
    return _python(PLAIN_IMPORT)


def test_plain_import_fails_only_as_the_shim_expects(plain_import):
    # Either torchvision works by itself (its compiled library loaded) or it fails exactly where the
    # shim steps in; any other failure is a torchvision the shim does not know.
    if plain_import["imports"]:
        assert plain_import["compiled"], "torchvision imports without its compiled operators: the shim is obsolete"
    else:
        assert re.fullmatch(r"operator torchvision::\w+ does not exist", plain_import["error"]), plain_import


# Each network of the ground-truth runs plus resnet18; the slow ones take 2-4 s each on 2 cores.
NETWORKS = [
    pytest.param("resnet18", {}, 1000, id="resnet18"),
    pytest.param("mobilenet_v3_small", {"num_classes": 10}, 10, id="mobilenet_v3_small"),
    pytest.param("regnet_x_400mf", {}, 1000, id="regnet_x_400mf"),
    pytest.param("resnet101", {}, 1000, id="resnet101", marks=pytest.mark.slow),
    pytest.param("vgg16", {}, 1000, id="vgg16", marks=pytest.mark.slow),
    pytest.param("mobilenet_v2", {}, 1000, id="mobilenet_v2", marks=pytest.mark.slow),
    pytest.param("convnext_tiny", {}, 1000, id="convnext_tiny", marks=pytest.mark.slow),
]


@pytest.mark.parametrize(("builder", "kwargs", "classes"), NETWORKS)
def test_network_builds_runs_and_rebuilds_with_fake_parameters(models, builder, kwargs, classes):
    model = getattr(models, builder)(weights=None, **kwargs)
    with torch.no_grad():
        assert model.eval()(torch.randn(*INPUT)).shape == (INPUT[0], classes)
    # revprof's fake path: a real module's parameters re-created inside FakeTensorMode (ConvNeXt and
    # RegNet cannot be built there directly: their init reads a tensor's value).
    spec = model_spec(model.train())
    assert spec.in_channels == INPUT[1]
    with FakeTensorMode():
        fake = spec.build(fake=True)
        output = fake(torch.empty(*INPUT))
        output.sum().backward()
    assert output.shape == (INPUT[0], classes)
    real = {name: p.shape for name, p in model.named_parameters()}
    assert {name: p.shape for name, p in fake.named_parameters()} == real
    assert all(p.grad is not None and p.grad.shape == p.shape for p in fake.parameters())


def test_factory_name_builds_once_torchvision_is_importable(models):
    spec = model_spec("torchvision.models:resnet18", {"weights": None})
    assert spec.in_channels == 3 and spec.build().fc.out_features == 1000


def test_stub_operators_say_why_they_cannot_run(models, plain_import):
    if plain_import["imports"]:
        pytest.skip("torchvision's compiled operators are loaded here: nothing was stubbed")
    with pytest.raises(RevprofError, match=r"torchvision::nms cannot run here: torchvision's compiled "
                                           r"operators did not load against this torch"):
        torch.ops.torchvision.nms(torch.zeros(2, 4), torch.zeros(2), 0.5)
    assert ensure_torchvision_importable() == "stubbed"  # idempotent


INERT = """
import json, torch
{predefine}
from revprof.nn import _torchvision as shim
state = shim.ensure_torchvision_importable()
import torchvision.models
print(json.dumps({{"state": state, "defined_by_revprof": shim._library is not None,
                  "roi_align": hasattr(torch.ops.torchvision, "roi_align")}}))
"""

# What torchvision's compiled library would have defined, as far as its import needs.
PREDEFINE = """
library = torch.library.Library("torchvision", "FRAGMENT")
library.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
library.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
"""


@pytest.mark.slow  # a fresh interpreter importing torch, revprof and torchvision: 5-10 s on 2 cores
def test_inert_where_the_operators_already_exist(plain_import):
    if plain_import["imports"]:  # the real thing: a torchvision whose compiled library loads
        result = _python(INERT.format(predefine=""))
        assert result == {"state": "untouched", "defined_by_revprof": False, "roi_align": True}
    else:  # simulated: the operators torchvision's import needs exist before revprof looks
        result = _python(INERT.format(predefine=PREDEFINE))
        assert result == {"state": "untouched", "defined_by_revprof": False, "roi_align": False}


def test_not_installed_is_left_to_the_import():
    # Where torchvision is installed, its absence is simulated: nothing finds it.
    result = _python("import importlib.util, json\n"
                     "importlib.util.find_spec = lambda name, package=None: None\n"
                     "from revprof.nn._torchvision import ensure_torchvision_importable as ensure\n"
                     "print(json.dumps([ensure(), __import__('torch').ops.torchvision.__dict__.get('nms')]))")
    assert result == ["not-installed", None]


def _registered_in_python(tree: ast.Module) -> dict[str, list[str]]:
    """``{operator: its fake kernel's argument names}`` for every function torchvision decorates with
    ``register_meta("op")`` or ``torch.library.register_fake("torchvision::op")``."""
    found = {}
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef):
            continue
        for decorator in node.decorator_list:
            if not (isinstance(decorator, ast.Call) and decorator.args and isinstance(decorator.args[0], ast.Constant)):
                continue
            function = decorator.func
            called = function.attr if isinstance(function, ast.Attribute) else getattr(function, "id", "")
            if called in ("register_meta", "register_fake"):
                found[str(decorator.args[0].value).removeprefix("torchvision::")] = [a.arg for a in node.args.args]
    return found


def test_shim_defines_every_operator_torchvision_registers_with_as_many_arguments():
    source = (_torchvision_dir() / "_meta_registrations.py").read_text()
    registered = _registered_in_python(ast.parse(source))
    schemas = {operator_name(s): torch._C.parse_schema(f"torchvision::{s}") for s in SCHEMAS}
    assert "nms" in registered and "qnms" in registered, "torchvision's fake kernels moved"
    assert sorted(set(registered) - set(schemas)) == [], "torchvision registers operators the shim lacks"
    # The same number of arguments (the names need not agree: torchvision's deform_conv2d fake kernel
    # says dil_h where its C++ schema says dilation_h; the dispatcher passes them by position).
    assert {name: len(schemas[name].arguments) for name in registered} == {
        name: len(arguments) for name, arguments in registered.items()}


def test_shim_covers_every_operator_named_in_torchvision_python():
    # Any "torchvision::op" string in torchvision's Python (autograd and autocast registrations too).
    named = set()
    for path in _torchvision_dir().rglob("*.py"):
        named |= set(re.findall(r"[\"']torchvision::(\w+)[\"']", path.read_text(errors="replace")))
    assert named and sorted(named - {operator_name(s) for s in SCHEMAS}) == []
