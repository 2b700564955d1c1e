"""Weight inheritance on real weights: top-5 agreement of smaller Lite0 twists with the Lite0 teacher.

Agreement = |student top-5 ∩ teacher top-5| / 5, averaged over scikit-image's sample photos (and their mirror
images); random init averaged over 3 seeds. A small-sample illustration, not an ImageNet claim.
"""
import statistics

import numpy as np
import torch

import tinynet_zoo as tz

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "retina",
          "stereo_motorcycle", "colorwheel", "camera", "brick", "grass", "gravel")
STUDENTS = {
    "depth 0.7": tz.Twist(1.0, 0.7, 1.0, 224, base="efficientnet_lite0", rules="lite"),
    "depth 0.5": tz.Twist(1.0, 0.5, 1.0, 224, base="efficientnet_lite0", rules="lite"),
    "width 0.9": tz.Twist(1.0, 1.0, 0.9, 224, base="efficientnet_lite0", rules="lite"),
    "width 0.75": tz.Twist(1.0, 1.0, 0.75, 224, base="efficientnet_lite0", rules="lite"),
    "r 0.8, d 0.8, w 0.9": tz.Twist(0.8, 0.8, 0.9, 180, base="efficientnet_lite0", rules="lite"),
}


def photos() -> list[np.ndarray]:
    """The sample photos as RGB uint8 arrays, each also mirrored."""
    from skimage import data

    out = []
    for name in PHOTOS:
        image = getattr(data, name)()
        image = image[0] if isinstance(image, tuple) else image
        image = np.stack([image] * 3, axis=-1) if image.ndim == 2 else image[..., :3]
        out += [image, image[:, ::-1].copy()]
    return out


def top5(model: torch.nn.Module, images: list[np.ndarray], resolution: int) -> list[set[int]]:
    """Top-5 ImageNet classes per image with the model's eval transform at `resolution`."""
    from PIL import Image
    from timm.data import create_transform, resolve_data_config

    config = resolve_data_config({}, model=model)
    config["input_size"] = (3, resolution, resolution)
    transform = create_transform(**config)
    batch = torch.stack([transform(Image.fromarray(image)) for image in images])
    with torch.no_grad():
        return [set(row.tolist()) for row in model.eval()(batch).topk(5).indices]


def agreement(student: list[set[int]], teacher: list[set[int]]) -> float:
    """Mean fraction of the teacher's top-5 that the student also ranks top-5."""
    return statistics.mean(len(s & t) / 5 for s, t in zip(student, teacher))


def measure() -> dict[str, tuple[float, float, int]]:
    """(inherited agreement, random-init agreement, student MACs) per student twist."""
    images = photos()
    teacher = top5(tz.create("efficientnet_lite0", pretrained=True), images, 224)
    results = {}
    for label, twist in STUDENTS.items():
        inherited = agreement(top5(tz.create(twist, pretrained="inherit"), images, twist.resolution), teacher)
        random = []
        for seed in range(3):
            torch.manual_seed(seed)
            random.append(agreement(top5(tz.create(twist), images, twist.resolution), teacher))
        results[label] = (inherited, statistics.mean(random), twist.macs)
    return results


if __name__ == "__main__":
    print(f"{len(PHOTOS) * 2} images; teacher efficientnet_lite0 ({tz.model_info('efficientnet_lite0').macs / 1e6:.0f}M MACs)")
    print("| student | MACs | inherited top-5 agreement | random-init agreement |")
    print("|---|---|---|---|")
    for label, (inherited, random, macs) in measure().items():
        print(f"| {label} | {macs / 1e6:.0f}M | {100 * inherited:.1f}% | {100 * random:.1f}% |")
