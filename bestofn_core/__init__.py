"""bestofn-core: best-of-N sampling for language-model programs, with DSPy's API.

``import bestofn_core as bon`` gives the whole public API; nothing heavy (litellm, plugins) is imported
until it is first needed.
"""

from bestofn_core import errors
from bestofn_core._version import __version__
from bestofn_core.adapters import Adapter, ChatAdapter, CompactAdapter, JSONAdapter
from bestofn_core.best_of_n.best_of_n import BestOfN
from bestofn_core.best_of_n.candidates import BestOfNPrediction, Candidate
from bestofn_core.best_of_n.rewards import reward
from bestofn_core.errors import AdapterParseError
from bestofn_core.hookspecs import hookimpl
from bestofn_core.lm.base import BaseLM
from bestofn_core.lm.cache import configure_cache
from bestofn_core.lm.history import inspect_history
from bestofn_core.lm.lm import LM
from bestofn_core.parallel import Parallel
from bestofn_core.predict.chain_of_thought import ChainOfThought
from bestofn_core.predict.predict import Predict
from bestofn_core.primitives.callbacks import BaseCallback
from bestofn_core.primitives.example import Example
from bestofn_core.primitives.module import Module
from bestofn_core.primitives.prediction import Completions, Prediction
from bestofn_core.primitives.usage import track_usage
from bestofn_core.serialization import load
from bestofn_core.settings import configure, context, load_settings, settings
from bestofn_core.signatures import InputField, OutputField, Signature, infer_prefix

__all__ = [
    "LM",
    "Adapter",
    "AdapterParseError",
    "BaseCallback",
    "BaseLM",
    "BestOfN",
    "BestOfNPrediction",
    "Candidate",
    "ChainOfThought",
    "ChatAdapter",
    "CompactAdapter",
    "Completions",
    "Example",
    "InputField",
    "JSONAdapter",
    "Module",
    "OutputField",
    "Parallel",
    "Predict",
    "Prediction",
    "Signature",
    "__version__",
    "configure",
    "configure_cache",
    "context",
    "errors",
    "hookimpl",
    "infer_prefix",
    "inspect_history",
    "load",
    "load_settings",
    "reward",
    "settings",
    "track_usage",
]
