"""Write the branching sample networks: ResNet-50 v1 and MobileNet v1 as TF-slim defines
them (the definitions the Distill table of receptive fields was computed from), and
ResNet-50 as torchvision builds it.

    python samples/nets/make_nets.py        # rewrites the three .yaml files beside it

TF-slim (tensorflow/models, research/slim/nets):
- resnet_v1_50: conv1 is conv2d_same 7×7/2 (explicit padding 3, then VALID), pool1 a
  3×3/2 max pool with padding SAME; each bottleneck unit is 1×1 → 3×3 (conv2d_same,
  carrying the unit's stride) → 1×1, plus the shortcut (a 1×1 projection where the depth
  changes, else the input subsampled by a 1×1/stride max pool); a block's stride is in its
  LAST unit; blocks 1–3 stride 2, block 4 stride 1; batch norm with scale; logits a 1×1
  conv with bias over the global average (here: global_avgpool, flatten, dense).
- mobilenet_v1: Conv2d_0 3×3/2, then 13 depthwise (3×3, padding SAME) + pointwise (1×1)
  pairs, batch norm and ReLU6 after each; 1001 classes.
torchvision.models.resnet50 ("v1.5"): the stride is in the 3×3 of a stage's FIRST unit, the
projection shortcut there carries it, pool1 pads 1; 1000 classes.  The parameters are the
same (25,557,032); the receptive fields and mult-adds are not.
"""

from pathlib import Path

HERE = Path(__file__).resolve().parent


def conv_bn(layers, name, out, k, s=1, p=0, inputs=None, relu="relu", groups=1):
    entry = {"name": name, "type": "conv", "out": out, "k": k, "s": s, "p": p, "bias": False}
    if groups != 1:
        entry["groups"] = groups
    if inputs is not None:
        entry["inputs"] = inputs
    layers.append(entry)
    layers.append({"name": f"{name}_bn", "type": "batchnorm"})
    if relu:
        layers.append({"name": f"{name}_{relu}", "type": relu})
    return layers[-1]["name"]


def resnet50(layout: str) -> dict:
    slim = layout == "tf-slim"
    layers = []
    conv_bn(layers, "conv1", 64, 7, 2, 3)
    layers.append({"name": "pool1", "type": "maxpool", "k": 3, "s": 2,
                   "p": "same_upper" if slim else 1})
    previous, depth_in = "pool1", 64
    for block, (base, units, stride) in enumerate([(64, 3, 2), (128, 4, 2), (256, 6, 2),
                                                   (512, 3, 1)] if slim else
                                                  [(64, 3, 1), (128, 4, 2), (256, 6, 2),
                                                   (512, 3, 2)], 1):
        for unit in range(1, units + 1):
            s = (stride if unit == units else 1) if slim else (stride if unit == 1 else 1)
            name = f"block{block}_unit{unit}"
            depth = 4 * base
            if depth != depth_in:
                shortcut = conv_bn(layers, f"{name}_shortcut", depth, 1, s, 0, previous, None)
            elif s != 1:
                layers.append({"name": f"{name}_shortcut", "type": "maxpool", "k": 1, "s": s,
                               "inputs": previous})
                shortcut = f"{name}_shortcut"
            else:
                shortcut = previous
            conv_bn(layers, f"{name}_conv1", base, 1, 1, 0, previous)
            conv_bn(layers, f"{name}_conv2", base, 3, s, 1)
            residual = conv_bn(layers, f"{name}_conv3", depth, 1, 1, 0, relu=None)
            layers.append({"name": f"{name}_add", "type": "add", "inputs": [shortcut, residual]})
            previous = f"block{block}" if unit == units else name
            layers.append({"name": previous, "type": "relu"})
            depth_in = depth
    layers += [{"name": "pool5", "type": "global_avgpool"}, {"name": "flatten", "type": "flatten"},
               {"name": "logits", "type": "dense", "out": 1000}]
    return {"name": "resnet50_v1" if slim else "resnet50_torchvision", "input": [3, 224, 224],
            "layers": layers}


def mobilenet_v1() -> dict:
    layers = []
    channels = 32
    conv_bn(layers, "Conv2d_0", 32, 3, 2, "same_upper", relu="relu6")
    for index, (stride, depth) in enumerate([(1, 64), (2, 128), (1, 128), (2, 256), (1, 256),
                                             (2, 512)] + [(1, 512)] * 5 + [(2, 1024), (1, 1024)],
                                            1):
        conv_bn(layers, f"Conv2d_{index}_depthwise", channels, 3, stride, "same_upper",
                relu="relu6", groups=channels)
        conv_bn(layers, f"Conv2d_{index}_pointwise", depth, 1, relu="relu6")
        channels = depth
    layers += [{"name": "AvgPool_1a", "type": "global_avgpool"},
               {"name": "flatten", "type": "flatten"},
               {"name": "Logits", "type": "dense", "out": 1001}]
    return {"name": "mobilenet_v1", "input": [3, 224, 224], "layers": layers}


def write(network: dict, header: str) -> None:
    import yaml

    lines = [f"name: {network['name']}", *(f"# {line}" for line in header.splitlines()),
             f"input: {network['input']}", "layers:"]
    for entry in network["layers"]:
        lines.append("  - " + yaml.safe_dump(entry, default_flow_style=True, sort_keys=False,
                                              width=1000).strip())
    (HERE / f"{network['name']}.yaml").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    note = "Written by make_nets.py (see there for the sources); edit that, not this."
    write(resnet50("tf-slim"), f"ResNet-50 v1 as TF-slim's resnet_v1_50 defines it.\n{note}")
    write(resnet50("torchvision"), f"ResNet-50 as torchvision.models.resnet50 builds it.\n{note}")
    write(mobilenet_v1(), f"MobileNet v1 (1.0, 224) as TF-slim's mobilenet_v1 defines it.\n{note}")
