"""Solutions to the exercises of notebook 02 (Gaussian spatial attention, eq. 2).

Each ``# %% Exercise k`` section answers exercise k: paste it into the exercise's cell (or
``%load`` this file there) and run the check cell below it. The sections run in the notebook,
after its own cells; CI runs every notebook with them in place (tests/test_course.py).
"""

# %% Exercise 1
# the glimpse of the whole (cropped) image, window a = [0, 0, 1, 1], against its 4 x 4 block average
import numpy as np

from minihart.nn.attention import glimpse_forward


def max_resize_difference(frame):
    x = frame[:, :112, :160][None].astype(np.float64)
    g, _ = glimpse_forward(x, np.array([[0.0, 0.0, 1.0, 1.0]]), (28, 40))
    block = x[0, 0].reshape(28, 4, 40, 4).mean(axis=(1, 3))
    return float(np.abs(g[0, 0] - block).max())


print(f"max |glimpse - 4 x 4 block average| = {max_resize_difference(frame):.3f}: not zero, because a Gaussian "
      "of sigma(4) ~ 1.5 px is no box filter; it weighs the block's centre more and leaks into its neighbours")


# %% Exercise 2
# rows r of one filterbank are centred at mu + r gamma, so d centre_r / d mu = 1 and dmu = sum_r dcentre_r.
# With A = E / sum_i E and E = exp(-z^2 / 2), z = (p - centre) / sigma:
#   dE * E = A (dA - sum_i dA A) =: q   (the normalisation),   dE / d centre = E z / sigma
def my_dmu(dA, A, z, sigma):
    q = A * (dA - (dA * A).sum(axis=2, keepdims=True))
    return ((q * z).sum(axis=2) / sigma[:, None]).sum(axis=1)


# %% Exercise 3
# the descent from a window shifted by 0.8 of its size, then the loss along a horizontal slide
import numpy as np

from minihart.nn.attention import attention_to_box, box_to_attention, glimpse_backward, glimpse_forward
from minihart.optim import Adam


def slide_losses(frame, target_window, xs):
    x = frame[None]
    g_star, _ = glimpse_forward(x, box_to_attention(target_window[None], frame.shape[1:]), (28, 28))
    windows = np.tile(target_window, (len(xs), 1))
    windows[:, 1] = xs
    g, _ = glimpse_forward(np.repeat(x, len(xs), axis=0), box_to_attention(windows, frame.shape[1:]), (28, 28))
    return 0.5 * ((g - g_star) ** 2).sum(axis=(1, 2, 3))


start = target_window.copy()  # target_window, g_star: the notebook's "learning where to look"
start[:2] += 0.8 * start[2:]
start[2:] *= 1.3
far = {"a": box_to_attention(start[None], (120, 160))}
opt = Adam(lr=0.01)
for step in range(60 if MINIHART_FAST else 200):
    g, cache = glimpse_forward(frame[None], far["a"], (28, 28))
    opt.step(far, {"a": glimpse_backward(g - g_star, cache, need_dx=False)[1]})
print("from 0.8 of a window away, the window ends at", attention_to_box(far["a"], (120, 160))[0].round(1),
      "instead of", target_window.round(1))
xs = np.linspace(-target_window[3] / 2, 160 - target_window[3] / 2, 61)
plt.figure(figsize=(6, 3))
plt.plot(xs, slide_losses(frame, target_window, xs))
plt.axvline(target_window[1], color="k", ls="--")
plt.xlabel("window x (pixels)")
plt.ylabel(r"$\frac{1}{2}||g(a) - g^*||^2$")
keeps_window_on_object = 11  # the spatial attention loss: the window must cover the object
print("far from the object the glimpse sees only background: the loss is flat there or has local minima, so its "
      "gradient does not point to the object; eq. (11) keeps the window on it during training")
