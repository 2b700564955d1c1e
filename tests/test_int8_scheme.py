"""The int8 scheme of .pte files and qat: SiLU rewritten as x * sigmoid(x), every sigmoid in XNNPACK's fixed int8
encoding, squeeze-excite's mean in int8, float-kept layers left alone, and the whole network lowered to XNNPACK."""
import collections

import pytest
import torch

import tinynet_zoo as tz
from tinynet_zoo import int8_scheme
from tinynet_zoo.deploy.fold import fold_batchnorm

pytest.importorskip("executorch", reason="the int8 scheme is ExecuTorch's quantizer: needs the [mobile] extra")

RES = 32
QUANTIZE, DEQUANTIZE = "quantized_decomposed.quantize_per_tensor.default", "quantized_decomposed.dequantize_per_tensor.default"


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    model = tz.create(tz.Twist(0.3, 0.3, 0.35, RES), num_classes=10)
    for norm in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)):
        norm.momentum = None  # running statistics: the average over the batches below
    with torch.no_grad():
        for _ in range(4):  # activations of unit scale, not the vanishing ones of fresh statistics
            model(torch.randn(16, 3, RES, RES))
    return fold_batchnorm(model.eval())


@pytest.fixture(scope="module")
def quantized(model):
    return converted(model)


def traced(model):
    any_batch = ({0: torch.export.Dim("batch", min=1)},)
    return torch.export.export(model, (torch.randn(2, 3, RES, RES),), dynamic_shapes=any_batch).module()


def converted(model, float_modules=()):
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    prepared = prepare_pt2e(traced(model), int8_scheme.quantizer(float_modules))
    prepared(torch.randn(8, 3, RES, RES))
    return convert_pt2e(prepared)


def ops(graph_module):
    return collections.Counter(n.target for n in graph_module.graph.nodes if n.op == "call_function")


def test_silu_becomes_the_same_function_as_a_sigmoid_product_keeping_its_module_path(model):
    graph_module = traced(model)
    silus = [n for n in graph_module.graph.nodes if n.target in (torch.ops.aten.silu.default, torch.ops.aten.silu_.default)]
    paths = [list(n.meta["nn_module_stack"].values())[-1][0] for n in silus]
    x = torch.randn(3, 3, RES, RES)
    before = graph_module(x)
    rewritten = int8_scheme.silu_as_sigmoid_product(graph_module)
    counts = ops(rewritten)
    assert silus and counts[torch.ops.aten.silu.default] == counts[torch.ops.aten.silu_.default] == 0
    products = [n for n in rewritten.graph.nodes if n.target == torch.ops.aten.mul.Tensor
                and getattr(n.args[1], "target", None) == torch.ops.aten.sigmoid.default and n.args[1].args[0] is n.args[0]]
    assert [list(n.meta["nn_module_stack"].values())[-1][0] for n in products] == paths
    assert torch.allclose(rewritten(x), before, rtol=1e-4, atol=1e-4)  # up to float rounding


def test_every_sigmoid_and_squeeze_excite_mean_computes_in_int8(model, quantized):
    graph_module = quantized
    sigmoids = [n for n in graph_module.graph.nodes if n.target == torch.ops.aten.sigmoid.default]
    assert len(sigmoids) == sum(isinstance(m, (torch.nn.SiLU, torch.nn.Sigmoid)) for m in model.modules())
    for sigmoid in sigmoids:
        assert str(sigmoid.args[0].target) == DEQUANTIZE
        (out,) = sigmoid.users
        assert str(out.target) == QUANTIZE and out.args[1:3] == (1 / 256, -128)  # XNNPACK's int8 sigmoid encoding
    means = [n for n in graph_module.graph.nodes if n.target == torch.ops.aten.mean.dim]
    assert means and all(str(m.args[0].target) == DEQUANTIZE and str(next(iter(m.users)).target) == QUANTIZE for m in means)


def test_float_kept_modules_keep_their_sigmoids_float(model):
    graph_module = converted(model, ("blocks.1",))
    for sigmoid in (n for n in graph_module.graph.nodes if n.target == torch.ops.aten.sigmoid.default):
        inside = any(path == "blocks.1" or path.startswith("blocks.1.")
                     for path, _ in sigmoid.meta["nn_module_stack"].values())
        assert (str(sigmoid.args[0].target) == DEQUANTIZE) is not inside


def test_activation_ranges_are_moving_average_min_max_as_in_qat(model):
    from torchao.quantization.pt2e import FixedQParamsObserver, ObserverBase
    from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e

    prepared = prepare_pt2e(traced(model), int8_scheme.quantizer())
    observed = [n for n in prepared.graph.nodes if n.op == "call_module"
                and isinstance(getattr(prepared, n.target), ObserverBase)]
    image_range = next(getattr(prepared, n.target) for n in observed if n.args[0].op == "placeholder"
                       and n.args[0].meta["val"].dim() == 4)  # the input images' range
    activations = [getattr(prepared, n.target) for n in observed]
    activations = [m for m in activations
                   if m.qscheme == torch.per_tensor_affine and not isinstance(m, FixedQParamsObserver)]
    assert {type(m).__name__ for m in activations} == {"MovingAverageMinMaxObserver"}
    x = torch.randn(32, 3, RES, RES)
    prepared(x)
    first = float(image_range.max_val)
    prepared(10 * x)  # one batch of 10x the range moves the range 1% of the way (a global min/max would take it)
    assert float(image_range.max_val) == pytest.approx(first + 0.01 * (10 * first - first), rel=1e-5)
