"""Weight inheritance on real weights: how closely untrained students follow their pretrained base (Lite0 by default,
any base with --base, e.g. mobilenetv3_large_100).

Agreement = the share of held-out views on which the student's top-1 class is the teacher's. Views are
random resized crops (25-100% of the area) and flips of scikit-image's 13 sample photos at 224 px: 256
calibration views (seed 0) rank the channels, 256 other views (seed 1) are held out. A proxy on 13 photos,
not an ImageNet accuracy. With --teacher (a model folder, e.g. a base trained on the digits by
benchmarks/bases.py) and --data (an image folder), the teacher is that model and the views are the folder's
images at the teacher's resolution: half rank the channels, the other half are held out.

    python benchmarks/inherit.py [--views 256] [--base efficientnet_lite0] [--teacher FOLDER --data FOLDER]
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

import tinynet_zoo as tz
from tinynet_zoo.core.twist import Twist
from tinynet_zoo.weights.inherit import inherit, leading_importance, measure_activations, weight_importance
from tinynet_zoo.weights.model_config import ModelConfig

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "retina",
          "stereo_motorcycle", "colorwheel", "camera", "brick", "grass", "gravel")


def students_for(base: str, resolution: int = 224) -> dict[str, Twist]:
    """The students cut from `base` (under its own rules) at the teacher's resolution: two widths, a depth, and
    all three twisted (r 0.8: 180 px at 224)."""
    rules = tz.model_info(base).twist.rules
    return {
        "width 0.9": Twist(1.0, 1.0, 0.9, resolution, base=base, rules=rules),
        "width 0.75": Twist(1.0, 1.0, 0.75, resolution, base=base, rules=rules),
        "depth 0.7": Twist(1.0, 0.7, 1.0, resolution, base=base, rules=rules),
        "r 0.8, d 0.8, w 0.9": Twist(0.8, 0.8, 0.9, 2 * round(0.4 * resolution), base=base, rules=rules),
    }


def photos() -> list[np.ndarray]:
    """The sample photos as RGB uint8 arrays."""
    from skimage import data

    out = []
    for name in PHOTOS:
        image = getattr(data, name)()
        image = image[0] if isinstance(image, tuple) else image
        out.append(np.stack([image] * 3, axis=-1) if image.ndim == 2 else image[..., :3])
    return out


def views(count: int, seed: int, resolution: int = 224) -> torch.Tensor:
    """`count` random resized crops and flips of the photos, normalised like ImageNet."""
    from PIL import Image
    from torchvision import transforms

    torch.manual_seed(seed)
    transform = transforms.Compose([
        transforms.RandomResizedCrop(resolution, scale=(0.25, 1.0)), transforms.RandomHorizontalFlip(),
        transforms.ToTensor(), transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
    images = [Image.fromarray(image) for image in photos()]
    return torch.stack([transform(images[i % len(images)]) for i in range(count)])


def top1(model: torch.nn.Module, batch: torch.Tensor) -> torch.Tensor:
    """Top-1 classes of a batch (in chunks)."""
    with torch.inference_mode():
        return torch.cat([model.eval()(chunk).argmax(-1) for chunk in batch.split(64)])


def students(teacher: torch.nn.Module, twist: Twist, calibration: torch.Tensor) -> dict[str, torch.nn.Module]:
    """The student built each way: random init, leading slice, weight importance, activation importance."""
    teacher_arch = ModelConfig.of(teacher).twist.arch
    torch.manual_seed(0)
    measured, means = measure_activations(teacher, teacher_arch, calibration.split(64))
    rankings = {"leading slice": (leading_importance(teacher_arch), None),
                "importance from weights": (weight_importance(teacher.state_dict(), teacher_arch), None),
                "importance from views": (measured, None),
                "importance from views + mean compensation": (measured, means)}
    classes = ModelConfig.of(teacher).num_classes  # the teacher's head: 1000 ImageNet classes, or its data's
    built = {"random init": tz.create(twist, num_classes=classes)}
    for label, (importance, shift) in rankings.items():
        student = tz.create(twist, num_classes=classes)
        student.load_state_dict(inherit(teacher.state_dict(), teacher_arch, student.state_dict(), twist.arch,
                                        importance, shift))
        built[label] = student
    return built


def folder_views(folder: str, count: int, resolution: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(calibration, held-out) views: up to 2 * `count` of the folder's images (shuffled, seed 0), halved."""
    from tinynet_zoo.calibration import batches

    images = torch.cat([x for x, _ in batches(folder, resolution, limit=2 * count, minimum=4)])
    half = len(images) // 2
    return images[:half], images[half:]


def agreement(teacher: torch.nn.Module, twist: Twist, calibration: torch.Tensor,
              held: torch.Tensor) -> dict[str, float]:
    """Per way of building the student: the share (percent) of held-out views where its top-1 is the teacher's."""
    batch = torch.nn.functional.interpolate(held, size=twist.resolution, mode="bilinear", antialias=True)
    reference = top1(teacher, batch)
    return {name: 100 * (top1(model, batch) == reference).float().mean().item()
            for name, model in students(teacher, twist, calibration).items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--views", type=int, default=256)
    parser.add_argument("--base", default="efficientnet_lite0", help="the pretrained base to cut students from, "
                        "e.g. mobilenetv3_large_100")
    parser.add_argument("--teacher", default=None, help="a model folder to cut students from instead of the "
                        "base's ImageNet weights (its base wins over --base)")
    parser.add_argument("--data", default=None, help="with --teacher: an image folder whose images are the views")
    args = parser.parse_args()
    tic = time.perf_counter()
    torch.manual_seed(0)
    teacher = (tz.create(args.teacher) if args.teacher else tz.create(args.base, pretrained=True)).eval()
    config = ModelConfig.of(teacher)
    twist, resolution = config.twist, config.data.resolution
    if args.data:
        calibration, held = folder_views(args.data, args.views, resolution)
    else:
        calibration, held = views(args.views, 0, resolution), views(args.views, 1, resolution)
    print(f"machine load average {os.getloadavg()[0]:.2f}; {len(calibration)} calibration and {len(held)} held-out "
          f"views; teacher {args.teacher or args.base} ({twist.base})")
    print("| student | MACs | random init | leading slice | importance from weights | importance from views | "
          "+ mean compensation |")
    print("|---|---|---|---|---|---|---|")
    for label, twist in students_for(twist.base, resolution).items():
        scores = agreement(teacher, twist, calibration, held)
        print(f"| {label} | {twist.macs / 1e6:.0f}M | " + " | ".join(f"{v:.1f}%" for v in scores.values()) + " |",
              flush=True)
    print(f"{time.perf_counter() - tic:.0f} s")


if __name__ == "__main__":
    main()
