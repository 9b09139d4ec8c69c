"""layersize: size the hidden layers of an MLP before training, from the NEAR score.

The NEAR score (Network Expressivity by Activation Rank) of a layer is the
effective rank of its pre-activation matrix plus that of its post-activation
matrix, each square, averaged over repetitions with fresh random weights and
inputs. Sweeping a layer's width, fitting a power law to score / width and
reading off where its slope has flattened gives a width estimate.

Main entry points
-----------------
effective_rank        effective rank of a matrix or batch of matrices
load_atomic_features  structure file -> scaled eeACSF descriptor rows
estimate_layer_sizes  greedy width estimate of several hidden layers
near_score            NEAR score of any PyTorch model
"""

from layersize.data import AtomicFeatures, load_atomic_features, read_structures
from layersize.descriptors import SN2_PARAMETERS, EEACSFParameters, eeacsf, eeacsf_many
from layersize.fit import FitError, PowerLawFit, fit_power_law, threshold_width
from layersize.images import ImageData, load_images
from layersize.layer_score import LayerScore, layer_score
from layersize.nets import ACTIVATIONS, INITIALIZATIONS, STanh, build_mlp
from layersize.rank import effective_rank
from layersize.score import NearScore, near_score
from layersize.sizing import SizingResult, estimate_layer_size, estimate_layer_sizes

__version__ = "0.1.0"

__all__ = [
    "ACTIVATIONS",
    "INITIALIZATIONS",
    "SN2_PARAMETERS",
    "AtomicFeatures",
    "EEACSFParameters",
    "FitError",
    "ImageData",
    "LayerScore",
    "NearScore",
    "PowerLawFit",
    "STanh",
    "SizingResult",
    "build_mlp",
    "eeacsf",
    "eeacsf_many",
    "effective_rank",
    "estimate_layer_size",
    "estimate_layer_sizes",
    "fit_power_law",
    "layer_score",
    "load_atomic_features",
    "load_images",
    "near_score",
    "read_structures",
    "threshold_width",
]
