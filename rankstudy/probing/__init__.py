"""The probing wing: per-layer feature rank of any `nn.Module` on real images (ReXNet, §3: where the
representation of a trained network collapses), and the `rankstudy probe` command behind it."""

from .hooks import BN_MODES, SKIPPED_TYPES, LayerFeatures, LayerSelection, collect_features, select_modules
from .images import DATA_CHOICES, load_images
from .models import LoadedModel, load_model
from .plot import plot_probe
from .run import DEFAULT_FLAG_MEASURE, DEFAULT_MAX_COLUMNS, format_flagged, measure_names, probe, rank_table, run_probe

__all__ = [
    "BN_MODES",
    "DATA_CHOICES",
    "DEFAULT_FLAG_MEASURE",
    "DEFAULT_MAX_COLUMNS",
    "SKIPPED_TYPES",
    "LayerFeatures",
    "LayerSelection",
    "LoadedModel",
    "collect_features",
    "format_flagged",
    "load_images",
    "load_model",
    "measure_names",
    "plot_probe",
    "probe",
    "rank_table",
    "run_probe",
    "select_modules",
]
