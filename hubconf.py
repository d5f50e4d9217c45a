"""torch.hub entry points: `torch.hub.load("path/to/clone", "rexnet_100", source="local", num_classes=10)`.

No weights are hosted (the project has no download location); pass `checkpoint=PATH` to load a file
in the official, timm or this package's layout.
"""

dependencies = ["torch", "safetensors"]

from rexnet.errors import RexnetError as _RexnetError  # noqa: E402
from rexnet.registry import create_model as _create_model  # noqa: E402
from rexnet.registry import list_models as _list_models  # noqa: E402


def _entry(name: str):
    def entry(pretrained: bool = False, **kwargs):
        if pretrained:
            raise _RexnetError(f"no pretrained weights are hosted for {name}; pass checkpoint=PATH instead")
        return _create_model(name, **kwargs)

    entry.__name__ = name
    entry.__doc__ = (
        f"Returns {name} (kwargs: num_classes, checkpoint, in_chans, features_only, output_stride, "
        "drop_path_rate, skip_head, dropout, …; see rexnet.create_model)."
    )
    return entry


# One public callable per listed name (the names `rexnet models` prints): torch.hub lists a hubconf's public
# callables as its models.
for _name in _list_models():
    globals()[_name] = _entry(_name)
