"""Precipitation nowcasting: rain-rate training data and task, verification, the baselines (persistence,
Lucas-Kanade extrapolation, S-PROG), evaluation, the motion check, tables, pictures, the model card and the
two-stage recipe.

The training loop reaches the rain-rate datasets (``"synthetic_rain"``, ``"radar"``) through
:mod:`bidirectional_conv_lstm.training.kinds`: the package's entry points name :data:`.task.RAIN_RATE_KIND`, and
importing this package registers it too.
"""

from .baselines import BASELINE_NAMES, get_baseline, get_baselines, model_forecaster
from .card import create_nowcasting_model_card, save_nowcasting_card
from .data import RAIN_RATE_DATASETS, load_rain_datasets
from .ensemble_verification import EnsembleVerifier, exceedance_probability
from .evaluation import evaluate_nowcasts, evaluate_rain_dataset, score_nowcasts, write_nowcast_evaluation
from .recipe import run_nowcasting_recipe
from .task import RainRateTask
from .verification import NowcastVerifier

__all__ = [
    "BASELINE_NAMES",
    "RAIN_RATE_DATASETS",
    "EnsembleVerifier",
    "NowcastVerifier",
    "RainRateTask",
    "create_nowcasting_model_card",
    "evaluate_nowcasts",
    "evaluate_rain_dataset",
    "exceedance_probability",
    "get_baseline",
    "get_baselines",
    "load_rain_datasets",
    "model_forecaster",
    "run_nowcasting_recipe",
    "save_nowcasting_card",
    "score_nowcasts",
    "write_nowcast_evaluation",
]
