"""Shape inference vs building the real module: 200-layer stacks (one mixing kinds generated from
torch.nn, with closed-form rules and meta-device forwards; one of Parallel blocks holding such
kinds, every row nested ones counted) and a resnet18 block.

Prints cold (first call in the process), warm (cache hit), edit (one row changed) inference
times next to the time to build the real nn.Module and run one real forward, and what generating
the torch.nn kinds cost when the catalog was imported. Last line: RESULT name=value ...
(``--quick``: 20-layer stacks and few repeats, a smoke run whose RESULT says quick=1; the keys
keep their names). Goals (issue 14): mixed200 and parallel200 cold <= 150 ms, edit <= 5 ms, catalog
generation <= 100 ms.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from workbench.model import build, catalog
from workbench.model.spec import LayerSpec, ModelSpec

torch.set_num_threads(2)


def timed(fn, repeat=1):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def linear_stack(n_pairs=100, width=64):
    layers = []
    for i in range(n_pairs):
        layers += [LayerSpec(f"fc{i}", "Linear", {"out_features": width}), LayerSpec(f"act{i}", "ReLU")]
    return ModelSpec((width,), layers)


def conv_stack(n=200):
    layers = []
    for i in range(n // 2):
        layers += [LayerSpec(f"c{i}", "Conv2d", {"out_channels": 16, "kernel_size": 3, "padding": 1}),
                   LayerSpec(f"a{i}", "ReLU")]
    return ModelSpec((16, 16, 16), layers)


def mixed_stack(n=200):
    """Blocks of ten rows that keep (8, 16, 16): new kinds with closed-form rules (pixel and channel
    shuffles, instance norm, activations) and with the meta forward (reflection padding). The edit
    changes a Conv2d's out_channels, so the nine rows up to the next Conv2d are inferred again."""
    block = [("ReflectionPad2d", {"padding": 1}), ("Conv2d", {"out_channels": 8, "kernel_size": 3}),
             ("InstanceNorm2d", {"affine": True}), ("Mish", {}), ("PixelUnshuffle", {"downscale_factor": 2}),
             ("ChannelShuffle", {"groups": 2}), ("PixelShuffle", {"upscale_factor": 2}), ("PReLU", {}),
             ("AlphaDropout", {"p": 0.1}), ("CELU", {})]
    layers = [LayerSpec(f"{kind.lower()}{i}", kind, dict(args))
              for i in range(n // len(block)) for kind, args in block]
    return ModelSpec((8, 16, 16), layers)


def parallel_stack(n=200):
    """Blocks of twenty rows (Parallel and Branch rows counted) that keep (8, 16, 16): an
    Inception-like concat (a 1x1 branch and a reflection-padded 3x3 branch), a squeeze-and-
    excitation mul (an identity branch and a pooled gate of new kinds, broadcast) and an add of
    a pixel (un)shuffle branch and an activation branch. The edit changes the gate's first
    Conv2d out_channels: only the gate's next rows are inferred again."""
    def conv(i, c, k=1):
        return LayerSpec(i, "Conv2d", {"out_channels": c, "kernel_size": k})

    def par(i, merge, *branches):
        return LayerSpec(i, "Parallel", {"merge": merge}, layers=list(branches))

    def branch(i, *layers):
        return LayerSpec(i, "Branch", layers=list(layers))

    layers = []
    for b in range(n // 20):
        layers += [
            par(f"inc{b}", "concat", branch(f"inc{b}_a", conv(f"inc{b}_c1", 4)),
                branch(f"inc{b}_b", LayerSpec(f"inc{b}_pad", "ReflectionPad2d", {"padding": 1}),
                       conv(f"inc{b}_c3", 4, 3))),
            par(f"se{b}", "mul", branch(f"se{b}_keep"),
                branch(f"se{b}_gate", LayerSpec(f"se{b}_pool", "AdaptiveAvgPool2d", {"output_size": 1}),
                       conv(f"se{b}_fc1", 2), LayerSpec(f"se{b}_act", "Mish"), conv(f"se{b}_fc2", 8),
                       LayerSpec(f"se{b}_sig", "Hardsigmoid"))),
            par(f"mix{b}", "add", branch(f"mix{b}_p", LayerSpec(f"mix{b}_down", "PixelUnshuffle",
                                                                {"downscale_factor": 2}),
                                         LayerSpec(f"mix{b}_up", "PixelShuffle", {"upscale_factor": 2})),
                branch(f"mix{b}_q", LayerSpec(f"mix{b}_celu", "CELU")))]
    return ModelSpec((8, 16, 16), layers)


def measure(name, spec, edit_row, repeat=20, edit_layer=None):
    build.clear_cache()
    cold = timed(lambda: build.infer(spec))
    warm = timed(lambda: build.infer(spec), repeat=repeat)

    real_build = timed(lambda: build.build_model(spec), repeat=3)
    model = build.build_model(spec).eval()
    x = build.example_input(spec, batch=2)
    with torch.no_grad():
        forward = timed(lambda: model(x), repeat=5)
    sizes = iter(range(100, 10_000))

    def edit():  # a size never seen before: the edited row and the next one miss the cache
        layer = edit_layer or spec.layers[edit_row]
        layer.args["out_features" if layer.type == "Linear" else "out_channels"] = next(sizes)
        build.infer(spec)
    edited = timed(edit, repeat=repeat)
    print(f"{name:22s} cold {cold:8.1f} ms  warm {warm:7.2f} ms  edit {edited:7.2f} ms  "
          f"| real build {real_build:8.1f} ms  real forward {forward:7.1f} ms  "
          f"| edit/build {edited / real_build:.3f}")
    return cold, warm, edited, real_build


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run, not a measurement")
    args = parser.parse_args()
    layers, repeat = (20, 3) if args.quick else (200, 20)
    build.warm_up()
    lin = measure(f"{layers} Linear+ReLU", linear_stack(layers // 2), edit_row=layers // 2, repeat=repeat)
    conv = measure(f"{layers} Conv2d+ReLU", conv_stack(layers), edit_row=layers // 2, repeat=repeat)
    mixed = measure(f"{layers} mixed new kinds", mixed_stack(layers), edit_row=layers // 2 + 1, repeat=repeat)
    blocks = parallel_stack(layers)
    rows = sum(1 for _ in blocks.walk())
    gate = blocks.find(f"se{layers // 40}_fc1")
    par = measure(f"{rows} rows of Parallel", blocks, edit_row=0, repeat=repeat, edit_layer=gate)
    started = time.perf_counter()
    catalog.torch_kinds()
    again = (time.perf_counter() - started) * 1e3
    print(f"catalog: {len(catalog.KINDS)} kinds, {len(catalog.GENERATED)} generated from torch.nn in "
          f"{catalog.GENERATION_MS:.1f} ms at import ({again:.1f} ms generated again)")
    r18 = ModelSpec((3, 224, 224), [LayerSpec("backbone", "resnet18", {}),
                                    LayerSpec("head", "Linear", {"out_features": 10})])
    t = time.perf_counter()
    import torchvision.models  # noqa: F401  (first backbone in a process pays this once)
    tv_import = (time.perf_counter() - t) * 1e3
    build.clear_cache()
    cold = timed(lambda: build.infer(r18))
    warm = timed(lambda: build.infer(r18), repeat=repeat)
    real = timed(lambda: build.build_model(r18), repeat=1 if args.quick else 3)
    heads = iter(range(11, 10_000))
    r18_head = timed(lambda: (r18.layers[1].args.__setitem__("out_features", next(heads)), build.infer(r18)),
                     repeat=repeat)
    print(f"{'resnet18 (3,224,224)':22s} cold {cold:8.1f} ms  warm {warm:7.2f} ms  edit head {r18_head:5.2f} ms "
          f"| real build {real:8.1f} ms | cold/build {cold / real:.2f} (torchvision import once: {tv_import:.0f} ms)")
    print(f"RESULT linear200_cold_ms={lin[0]:.1f} linear200_edit_ms={lin[2]:.2f} "
          f"linear200_edit_vs_build={lin[2] / lin[3]:.3f} "
          f"conv200_cold_ms={conv[0]:.1f} conv200_edit_ms={conv[2]:.2f} conv200_edit_vs_build={conv[2] / conv[3]:.3f} "
          f"resnet18_cold_ms={cold:.1f} resnet18_warm_ms={warm:.2f} resnet18_cold_vs_build={cold / real:.2f}"
          + f" mixed200_cold_ms={mixed[0]:.1f} mixed200_edit_ms={mixed[2]:.2f} catalog_generation_ms="
          f"{catalog.GENERATION_MS:.1f} catalog_kinds={len(catalog.KINDS)}"
          + f" parallel200_cold_ms={par[0]:.1f} parallel200_edit_ms={par[2]:.2f} parallel200_rows={rows}"
          + (" quick=1" if args.quick else ""))


if __name__ == "__main__":
    main()
