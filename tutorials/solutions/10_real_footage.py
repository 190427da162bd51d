"""Solutions to the exercises of notebook 10 (real footage).

Each ``# %% Exercise k`` section answers exercise k: paste it into the exercise's cell (or
``%load`` this file there) and run the check cell below it. The sections run in the notebook,
after its own cells; CI runs every notebook with them in place (tests/test_course.py).
"""

# %% Exercise 1
import numpy as np

from minihart.boxes import iou


def sequence_scores(pred, truth, presence):
    keep = np.asarray(presence) > 0
    pred, truth = np.asarray(pred, np.float64)[keep], np.asarray(truth, np.float64)[keep]
    centre_error = np.hypot(*((pred[:, :2] + pred[:, 2:] / 2) - (truth[:, :2] + truth[:, 2:] / 2)).T)
    return iou(pred, truth).mean(), (centre_error <= 20).mean()


print("the clip:", [round(float(v), 3) for v in sequence_scores(pred, truth, presence)])


# %% Exercise 2
import numpy as np


def window_to_box(att, pred):
    return np.sqrt((att[:, 2] * att[:, 3]) / (pred[:, 2] * pred[:, 3]))


print("window / box over the clip: first", round(float(window_to_box(att, pred)[1]), 2),
      "last", round(float(window_to_box(att, pred)[-1]), 2))
