"""The first page: what A and B are, and the causes of divergence, each with the scenarios that show it.

The causes are the four named by "Why do TensorFlow and Keras produce different results for
the same neural network?", and one more group for the scenarios that fit none of them.
One click on a scenario loads it into the sidebar and trains it.
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from core.presets import PRESETS
from ui import sidebar


@dataclass(frozen=True)
class Cause:
    title: str
    about: str
    scenarios: tuple[str, ...]  # names in core.presets.ALL_PRESETS; every preset is under one cause


CAUSES = (
    Cause("Random initialisation", "Which seeds reach the initial weights.",
          ("two-models-one-process", "tf-seed-not-enough", "custom-layer")),
    Cause("Optimizer settings", "Defaults that differ from one library to another.", ("adam-epsilon",)),
    Cause("Backend differences", "The engine and its backend (TensorFlow, JAX, PyTorch), the float precision, the "
          "compiler and the CPU kernels.",
          ("keras3-vs-tf-keras", "fit-vs-raw-loop", "same-seed-two-backends", "two-backends-aligned",
           "float32-vs-float64", "xla-on-off", "onednn-on-off", "tf32-vs-float32", "gpu-vs-cpu")),
    Cause("Data preprocessing", "How the inputs are scaled and how missing values are filled.",
          ("population-vs-sample-std", "mean-vs-median-impute")),
    Cause("And also", "The order of the batches, and the control: A and B the same.", ("batch-order", "run-it-twice")),
)

INTRO = ("**A** and **B** are two models trained from the same setup except for the factors chosen under "
         "**B differs in** in the sidebar, each in a fresh process. Below, the causes of different results for the "
         "same network, each with scenarios that show it: one click loads a scenario into the sidebar and trains "
         "it. Or set up A and B in the sidebar yourself and press **Run**.")


def _pick(name: str) -> None:
    # A callback runs before the script, so the sidebar's widgets take the scenario when they are drawn.
    sidebar.load_scenario(name)
    sidebar.request_run()


def show() -> None:
    """Draw the first page: each cause above its scenarios, each scenario a button beside its description."""
    st.markdown(INTRO)
    for cause in CAUSES:
        st.markdown(f"#### {cause.title}")
        st.caption(cause.about)
        for name in (name for name in cause.scenarios if name in PRESETS):  # (GPU scenarios need a GPU)
            button, text = st.columns([1, 2], vertical_alignment="center")
            # (no tooltip: INTRO says once what a click does; a tooltip on each button slows the first page)
            button.button(name, key=f"gallery.{name}", on_click=_pick, args=(name,), width="stretch")
            text.caption(PRESETS[name].description)
