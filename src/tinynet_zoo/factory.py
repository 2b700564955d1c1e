"""The factory: which model the user meant (`resolve`, the one resolver every entry point uses) and `create`,
which builds it (core) and puts weights into it (weights).

A model spec is a catalogued name or alias ('tinynet_b', 'efficientnet_bm2'), a name with a checkpoint tag
('tinynet_b.in1k'), a MAC budget ('50M', 5e7: the tiny formula), a `Twist`, a saved model folder (a `Path`,
an existing folder path, or 'local-dir:PATH'), 'hf-hub:user/repo[@revision]', or a built `nn.Module`.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .calibration import batches as calibration_batches
from .checks import boolean, integer
from .core.budget import looks_like_budget, parse_budget
from .core.formula import for_flops
from .core.module import attach_config, build_module
from .core.registry import DataConfig, Entry, get_entry, split_tag
from .core.twist import Twist
from .errors import CheckpointNotFoundError, IncompatibleCheckpointError, InvalidArgumentError, UnknownModelError
from .timm_entry import register_timm
from .weights import load
from .weights.folder import is_model_folder, read_folder
from .weights.hub import HUB_PREFIX, download_folder, parse_repo
from .weights.inherit import check_teacher, inherit, measure_activations, teachers_for, weight_importance
from .weights.load import checkpoint_for, load_state, saved_classes
from .weights.model_config import ModelConfig

if TYPE_CHECKING:
    import torch.nn as nn

LOCAL_PREFIX = "local-dir:"
SPEC_KINDS = ("entry", "budget", "twist", "folder", "hub", "module")
SPEC_HELP = ("a model name (see list_models()), 'name.tag', a MAC budget like '50M', a Twist, a saved model "
             "folder, 'hf-hub:user/repo' or a torch module")


@dataclass(frozen=True)
class Target:
    """What a model spec names, found without building anything (resolving never imports torch)."""

    kind: str  # one of SPEC_KINDS
    label: str  # what users call it: the canonical name, 'twist', the folder or the hub repo
    twist: "Twist | None" = None  # None for hub repos (known once downloaded) and modules
    entry: "Entry | None" = None
    tag: "str | None" = None  # the checkpoint tag a 'name.tag' spec names
    location: "str | None" = None  # the folder path or the 'hf-hub:' spec
    module: Any = None

    @property
    def brings_weights(self) -> bool:
        """Folders, hub repos and modules carry their own weights."""
        return self.kind in ("folder", "hub", "module")

    def default_pretrained(self) -> "bool | str":
        """What fine-tuning starts from by default: the hosted checkpoint, else weights inherited from a larger
        pretrained model (budgets, twists, catalogued models without a checkpoint); folders bring their own."""
        if self.brings_weights:
            return True
        return True if self.entry is not None and self.entry.checkpoint else "inherit"


def _is_module(spec: Any) -> bool:
    torch = sys.modules.get("torch")  # a module exists only if torch was imported: no need to import it here
    return torch is not None and isinstance(spec, torch.nn.Module)


def _folder(path: "str | Path") -> Target:
    path = Path(path).expanduser()
    if not is_model_folder(path):
        what = "does not exist" if not path.exists() else "is not a model folder (config.json and model.safetensors)"
        raise InvalidArgumentError(f"{str(path)!r} {what}; a model folder is written by save_pretrained or "
                                   "finetune --out (its best/ folder)")
    return Target("folder", str(path), location=str(path))


def _named(name: str) -> Target:
    """A catalogued name, alias or 'name.tag' (the tag checked against the weights manifest)."""
    model, tag = split_tag(name)
    entry = get_entry(model)
    if tag is None:
        return Target("entry", entry.name, entry.twist, entry)
    ckpt = checkpoint_for(entry, f"{entry.name}.{tag}")
    return Target("entry", entry.name, entry.twist, entry, tag=ckpt.tag)


def resolve(spec: Any) -> Target:
    """What a model spec names (see the module docstring for the accepted kinds); nothing is built."""
    if isinstance(spec, Target):
        return spec
    if isinstance(spec, Twist):
        return Target("twist", "twist", spec)
    if isinstance(spec, Path):
        return _folder(spec)
    if _is_module(spec):
        return Target("module", type(spec).__name__, module=spec)
    if isinstance(spec, (int, float)) and not isinstance(spec, bool) or isinstance(spec, str) and \
            looks_like_budget(spec):
        return Target("budget", "twist", for_flops(parse_budget(spec)))
    if not isinstance(spec, str) or not spec.strip():
        raise InvalidArgumentError(f"expected {SPEC_HELP}; got {spec!r}")
    if spec.startswith(HUB_PREFIX):
        parse_repo(spec)
        return Target("hub", spec[len(HUB_PREFIX):], location=spec)
    if spec.startswith(LOCAL_PREFIX):
        return _folder(spec[len(LOCAL_PREFIX):])
    try:
        return _named(spec)
    except UnknownModelError:
        if Path(spec).expanduser().exists():
            return _folder(spec)
        raise


def create(spec: Any, pretrained: "bool | str" = False, num_classes: "int | None" = None,
           in_chans: "int | None" = None, features_only: bool = False, checkpoint_path: "str | Path | None" = None,
           cache_dir: "str | Path | None" = None, inherit_from: Any = None, calibration: Any = None,
           **kwargs: Any) -> "nn.Module":
    """Build a model spec (name, 'name.tag', budget, Twist, model folder, 'hf-hub:...') as a timm EfficientNet.

    pretrained: False, True (the entry's checkpoint, or the tag the name carries), a manifest tag such as
    'tinynet_b.in1k', or 'inherit': cut from a larger trained network of the same base (`inherit_from`, a model
    spec such as a fine-tuned folder; default the nearest larger pretrained registry model), keeping the channels
    that matter most on `calibration` images (a folder or batches; without them, judged from the weights).
    checkpoint_path loads a local file. Folders and hub repos bring their own weights, classes and data config.
    num_classes defaults to the checkpoint's class count (1000 without one); a different count re-initialises
    the classifier. in_chans defaults to 3 (to the saved count for folders).
    """
    target = resolve(spec)
    if target.kind == "module":
        given = dict(pretrained=pretrained, num_classes=num_classes, in_chans=in_chans, features_only=features_only,
                     checkpoint_path=checkpoint_path, **kwargs)
        changed = [k for k, v in given.items() if v not in (None, False)]
        if changed:
            raise InvalidArgumentError(f"a built module is used as it is; {', '.join(changed)} cannot change it "
                                       "(pass a model name, Twist or folder to build a new one)")
        return target.module
    register_timm()  # building imports timm anyway: the zoo's names join timm's registry (once)
    if target.brings_weights:
        return _from_folder(target, pretrained, num_classes, in_chans, features_only, checkpoint_path, cache_dir,
                            kwargs)
    boolean("features_only", features_only)
    source = _weights_source(target, pretrained, checkpoint_path)
    if source != "inherit" and (inherit_from is not None or calibration is not None):
        raise InvalidArgumentError("inherit_from and calibration choose what pretrained='inherit' cuts from; "
                                   f"they do not apply to pretrained={pretrained!r}")
    teacher = _teacher(target.twist, inherit_from, cache_dir) if source == "inherit" else None
    state = None if source in (None, "inherit") else _state(target, source, checkpoint_path, cache_dir)
    saved = teacher.num_classes if teacher is not None else saved_classes(state)
    num_classes = integer("num_classes", num_classes if num_classes is not None else saved or 1000, 0)
    in_chans = integer("in_chans", 3 if in_chans is None else in_chans, 1)
    model = build_module(target.twist.arch, num_classes=num_classes, in_chans=in_chans, features_only=features_only,
                         **kwargs)
    if teacher is not None:
        state = _inherited(teacher, target.twist, model, calibration)
    if state is not None:
        load_state(model, state, in_chans, new_head=saved is not None and num_classes != saved)
    data = target.entry.data_config if target.entry is not None else DataConfig(resolution=target.twist.resolution)
    return attach_config(model, target.twist, target.label, num_classes, in_chans, data)


def _weights_source(target: Target, pretrained: Any, checkpoint_path: Any) -> "str | None":
    """'file', 'inherit', a manifest tag, or None (no weights), after checking the combination makes sense."""
    is_tag = isinstance(pretrained, str) and "." in pretrained
    if not (isinstance(pretrained, bool) or pretrained == "inherit" or is_tag):
        raise InvalidArgumentError(f"pretrained must be False, True, 'inherit' or a checkpoint tag like "
                                   f"'tinynet_b.in1k', got {pretrained!r}")
    if isinstance(pretrained, str) and pretrained != "inherit" and target.tag is not None and pretrained != target.tag:
        raise InvalidArgumentError(f"the name asks for checkpoint {target.tag!r} but pretrained={pretrained!r}: "
                                   "give the tag once")
    if checkpoint_path is not None:
        if pretrained is not False or target.tag is not None:
            raise InvalidArgumentError("checkpoint_path loads a local file: leave out pretrained and the name's "
                                       f"tag (got pretrained={pretrained!r}, tag {target.tag!r})")
        return "file"
    if pretrained == "inherit":
        if target.tag is not None:
            raise InvalidArgumentError(f"pretrained='inherit' cuts weights from a larger model; the name's tag "
                                       f"{target.tag!r} does not apply")
        return "inherit"
    if pretrained is False:
        return None
    if target.entry is None:
        raise CheckpointNotFoundError("an uncatalogued twist has no hosted checkpoint; use pretrained='inherit' to "
                                      "start from the nearest larger pretrained model, or checkpoint_path=")
    tag = pretrained if isinstance(pretrained, str) else target.tag
    return checkpoint_for(target.entry, tag).tag


def _state(target: Target, source: str, checkpoint_path: Any, cache_dir: Any) -> dict:
    """timm-layout tensors for the model from a local file or a manifest checkpoint."""
    if source == "file":
        return load.file_state(checkpoint_path, target.twist.arch)
    return load.checkpoint_state(checkpoint_for(target.entry, source), target.twist.arch, cache_dir)


def _teacher(twist: Twist, inherit_from: Any, cache_dir: Any) -> "nn.Module":
    """The network to inherit from: `inherit_from` (with its weights), else the nearest larger pretrained registry
    model of the twist's base that can be loaded."""
    if inherit_from is not None:
        source = resolve(inherit_from)
        teacher = create(source) if source.brings_weights else create(source, pretrained=True, cache_dir=cache_dir)
        refusal = "inherit_from: this module was not made by tinynet_zoo.create"
        check_teacher(ModelConfig.of(teacher, refusal).twist, twist)
        return teacher
    tried, first = [], None
    for entry in teachers_for(twist):
        try:
            return create(entry.name, pretrained=True, cache_dir=cache_dir)
        except CheckpointNotFoundError as exc:
            tried.append(entry.checkpoint)
            first = first or exc
    raise CheckpointNotFoundError(
        f"pretrained='inherit' needs a pretrained teacher on {twist.base} of at least {twist.macs:,} MACs; none "
        f"could be loaded (tried {', '.join(tried) or 'none registered'}). The first: {first}. Fetch one once "
        f"(`tinynet-zoo download {tried[0] if tried else 'NAME'}`), pass inherit_from=, or train from scratch")


def _inherited(teacher: "nn.Module", twist: Twist, student: "nn.Module", calibration: Any) -> dict:
    """The student's tensors cut from the teacher, channels ranked on calibration images (else by weights)."""
    teacher_arch = ModelConfig.of(teacher).twist.arch
    means = None
    if calibration is not None:
        views = [images for images, _ in calibration_batches(calibration, twist.resolution)]
        importance, means = measure_activations(teacher, teacher_arch, views)
    else:
        importance = weight_importance(teacher.state_dict(), teacher_arch)
    return inherit(teacher.state_dict(), teacher_arch, student.state_dict(), twist.arch, importance, means)


def _from_folder(target: Target, pretrained: Any, num_classes: "int | None", in_chans: "int | None",
                 features_only: bool, checkpoint_path: Any, cache_dir: Any, kwargs: dict[str, Any]) -> "nn.Module":
    """Re-create a saved model folder (local or from the hub) exactly; num_classes swaps the head."""
    if pretrained not in (False, True) or checkpoint_path is not None or features_only:
        raise InvalidArgumentError(f"{target.label} carries its own weights: pretrained, checkpoint_path and "
                                   "features_only do not apply")
    folder = download_folder(target.location, cache_dir) if target.kind == "hub" else Path(target.location)
    config, state = read_folder(folder)  # config.json checked, and against the weights' shapes
    saved, saved_chans = config.num_classes, config.in_chans
    num_classes = integer("num_classes", saved if num_classes is None else num_classes, 0)
    in_chans = integer("in_chans", saved_chans if in_chans is None else in_chans, 1)
    if in_chans != saved_chans and saved_chans != 3:
        raise IncompatibleCheckpointError(f"{folder} has {saved_chans} input channels; it can be loaded with "
                                          f"in_chans={saved_chans} (or 3-channel weights adapted)")
    pool = {"global_pool": config.global_pool} if config.global_pool != "avg" else {}
    model = build_module(config.twist.arch, num_classes=num_classes, in_chans=in_chans,
                         **{**pool, **kwargs})  # the saved global_pool, unless overridden
    load_state(model, state, 3 if in_chans == saved_chans else in_chans,  # adapt only 3-channel weights
               new_head=num_classes != saved)
    return attach_config(model, config.twist, config.name, num_classes, in_chans, config.data,
                         label_names=config.label_names if num_classes == saved else None)


def load_pretrained(folder: "str | Path", num_classes: "int | None" = None, in_chans: "int | None" = None,
                    **kwargs: Any) -> "nn.Module":
    """Re-create a saved model folder exactly (twist, classes, data config, weights); num_classes swaps the head."""
    return create(Path(folder), num_classes=num_classes, in_chans=in_chans, **kwargs)
