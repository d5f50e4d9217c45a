"""torch.hub entry points: `torch.hub.load("path/to/clone", "rexnet_100", source="local", num_classes=10)`.

No weights are hosted (the project has no download location): `pretrained=True` loads a local copy of the
published weights as `rexnet.create_model` does (e.g. from the Hugging Face cache), or pass `checkpoint=PATH`
to load a file in the official, timm or this package's layout (one that records another network, e.g. a `rexnet train
--small-input s16` run, is refused: pass `small_input="s16"` too, or load it with `from_checkpoint`).
`from_checkpoint(path)` returns the network a checkpoint written by this package records, with its weights.
"""

dependencies = ["torch", "safetensors"]

from rexnet.registry import create_model as _create_model  # noqa: E402
from rexnet.registry import list_models as _list_models  # noqa: E402


def _entry(name: str):
    def entry(pretrained: bool = False, **kwargs):
        return _create_model(name, pretrained=pretrained, **kwargs)

    entry.__name__ = name
    entry.__doc__ = (
        f"Returns {name} (kwargs: num_classes, checkpoint, in_chans, small_input, features_only, output_stride, "
        "drop_path_rate, skip_head, dropout, …; see rexnet.create_model)."
    )
    return entry


def from_checkpoint(path: str, **kwargs):
    """Returns the network a checkpoint of this package (`rexnet train`, `save_checkpoint`) records, with its
    weights: block table, small-input mode, input channels and classes as saved (see rexnet.create_model)."""
    return _create_model(path, **kwargs)


# One public callable per listed name (the names `rexnet models` prints): torch.hub lists a hubconf's public
# callables as its models.
for _name in _list_models():
    globals()[_name] = _entry(_name)
