"""Plots of mfgx results (matplotlib; imported on demand, never by ``import mfgx``).

    from mfgx.plot import plot_equilibrium
    fig = plot_equilibrium(eq, path="flow.png", history=exploitabilities)
"""

from ._calibration import plot_comparison, plot_fits, plot_losses, plot_parameters
from ._counterfactual import plot_counterfactual
from ._finite import plot_equilibrium
from ._generative import (
    animate_flow, density_grid, histogram_density, plot_density, plot_samples, plot_training, plot_trajectories, sample_limits,
)
from ._neural import plot_correction

__all__ = [
    "animate_flow", "density_grid", "histogram_density", "plot_density", "plot_samples", "plot_training", "plot_trajectories",
    "sample_limits",
    "plot_comparison", "plot_correction", "plot_counterfactual", "plot_equilibrium", "plot_fits", "plot_losses", "plot_parameters"]
