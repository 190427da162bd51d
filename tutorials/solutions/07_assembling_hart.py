"""Solutions to the exercises of notebook 07 (assembling HART, eqs. 2-9).

Each ``# %% Exercise k`` section answers exercise k: paste it into the exercise's cell (or
``%load`` this file there) and run the check cell below it. The sections run in the notebook,
after its own cells; CI runs every notebook with them in place (tests/test_course.py).
"""

# %% Exercise 1
# lambda_s = lambda_a ~ 0, held fixed: set them once in the fresh model, zero their gradients every step
import numpy as np

from minihart.optim import Adam


def no_auxiliary_losses(params, grads):
    if grads is None:
        params["loss_v"][1:] = 1e-3
    else:
        grads["loss_v"][1:] = 0


def overfit(hook, steps=len(history)):
    """Adam on the notebook's batch from a fresh model; ``hook(params, grads)`` edits both. Returns IoUs."""
    p, adam, ious = init_params(cfg, np.random.default_rng(0)), Adam(lr=3e-3), []
    hook(p, None)
    for _ in range(steps):
        out, cache = forward(p, cfg, frames, boxes, presence)
        g = backward(cache)
        hook(p, g)
        adam.step(p, g)
        ious.append(float(out["iou"][:, 1:].mean()))
    return ious


ious_without_aux = overfit(no_auxiliary_losses)
plt.figure(figsize=(6, 3))
plt.plot([h["iou"] for h in history], label="all losses")
plt.plot(ious_without_aux, label=r"$\lambda_s \approx \lambda_a \approx 0$")
plt.legend()
print("on one batch the ablation fits about as well: the auxiliary terms matter for learning from a data set "
      "(paper, section 6: without them gradients vanish when the glimpse loses the object early), not for memorising")


# %% Exercise 2
# tanh(c) = 0 in eq. (7): the attention window never moves (overfit: exercise 1's)
def frozen_attention(params, grads):
    if grads is None:
        params["att_gain"][:] = 0
    else:
        grads["att_gain"][:] = 0


ious_frozen = overfit(frozen_attention)
print(f"frozen window: IoU {ious_frozen[0]:.3f} -> {ious_frozen[-1]:.3f}. It still improves while the object stays "
      "inside the first window: the box of eq. (8) is predicted relative to the window, and the glimpse still sees it")


# %% Exercise 3
# a backward pass that forgets the recurrent weights' gradient, caught by the end-to-end check
import numpy as np


def broken_backward(cache):
    grads = backward(cache)
    grads["lstm.Wh"] = np.zeros_like(grads["lstm.Wh"])
    return grads


broken_block = "lstm.Wh"
for name, bwd in (("right", backward), ("broken", broken_backward)):
    err = check(loss_forward, lambda dloss, c: {k: dloss * g for k, g in bwd(c).items()}, p64, wrt=[broken_block],
                max_elements=60, n_directions=3)[broken_block]
    print(f"{name:6s} backward: {broken_block} rel. error {err:.1e}")
