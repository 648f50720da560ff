"""A gallery of the teaching and diagnostic plots in ``mm.plots``, saved as PNG files.

Run with ``python examples/plots_gallery.py [OUTPUT_FOLDER]``; without a folder
the files go to a new temporary folder, whose name is printed.

Needs matplotlib (``pip install "mixedmodels[plot]"``); without it the script
says so and exits without error.  All plots use the sleep-deprivation model
``Reaction ~ Days + (Days | Subject)``.
"""

import sys
import tempfile
from pathlib import Path

try:
    import matplotlib
except ImportError:
    print("matplotlib is not installed, so there is nothing to draw; "
          'install it with: pip install "mixedmodels[plot]"')
    sys.exit(0)

matplotlib.use("Agg")  # draw to files, no window needed
import matplotlib.pyplot as plt  # noqa: E402

import mixedmodels as mm  # noqa: E402

folder = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="mixedmodels_plots_"))
folder.mkdir(parents=True, exist_ok=True)

sleep = mm.datasets.load("sleepstudy")
model = mm.lmer("Reaction ~ Days + (Days | Subject)", sleep)

plots = [
    ("caterpillar.png",
     "each subject's random intercept and slope with 95% intervals, sorted",
     lambda: mm.plots.caterpillar(model)),
    ("shrinkage.png",
     "each subject's own least-squares line (no pooling) against the model's (partial pooling)",
     lambda: mm.plots.shrinkage(model)),
    ("residual_diagnostics.png",
     "residuals against fitted values and normal Q-Q plots of residuals and random effects",
     lambda: mm.plots.residual_diagnostics(model)),
    ("spaghetti.png",
     "each subject's fitted line over the days, with the population line in bold",
     lambda: mm.plots.spaghetti(model, x="Days")),
    ("profile.png",
     "profile zeta plots: straight lines mean Wald and profile intervals agree",
     lambda: mm.plots.profile_plot(model)),
]

print(f"Writing {len(plots)} plots of {model.formula} to {folder}")
for filename, what, draw in plots:
    fig = draw()
    path = folder / filename
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"  {filename:26s} {what}")
print(f"Done: {len(plots)} PNG files in {folder}")
