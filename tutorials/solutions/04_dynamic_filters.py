"""Solutions to the exercises of notebook 04 (dynamic filter networks, eqs. 3-4).

Each ``# %% Exercise k`` section answers exercise k: paste it into the exercise's cell (or
``%load`` this file there) and run the check cell below it. The sections run in the notebook,
after its own cells (exercise 2 reuses its toy world); CI runs every notebook with them in place
(tests/test_course.py).
"""

# %% Exercise 1
# the same kernels for every sample make the dynamic convolution a static one; the static filter
# gradient is the sum over the batch of the per-sample ones
import numpy as np

from minihart.nn.dfn import dynamic_conv_forward


def conv_as_dynamic(x, w, b, pad):
    B = x.shape[0]
    wd = np.ascontiguousarray(np.broadcast_to(w, (B,) + w.shape))
    bd = np.ascontiguousarray(np.broadcast_to(b, (B,) + b.shape))
    return dynamic_conv_forward(x, wd, bd, pad)[0]


def dw_as_static(dw_dynamic):
    return dw_dynamic.sum(axis=0)


# %% Exercise 2
# the training loop of section 4 with an alpha that carries no information about the kind
import numpy as np

from minihart.optim import Adam

noise_rng = np.random.default_rng(3)
noise_params, noise_opt, noise_history = init(noise_rng), Adam(lr=3e-3), []
for step in range(len(history)):
    x, boxes = scenes(noise_rng, 32)
    kind = noise_rng.integers(0, 2, 32)
    no_info = (0.1 * noise_rng.standard_normal((32, D))).astype(np.float32)  # says nothing about the kind
    loss, cache = loss_forward(noise_params, v1(x.astype(np.float32)), no_info, targets(boxes.astype(np.float32), kind))
    noise_opt.step(noise_params, loss_backward(np.float32(1), cache))
    noise_history.append(float(loss))
plt.figure(figsize=(6, 3))
plt.semilogy(history, label="alpha names the kind")
plt.semilogy(noise_history, label="alpha is noise")
plt.legend()
print(f"last 20 steps: {np.mean(noise_history[-20:]):.3f} without appearance, {np.mean(history[-20:]):.3f} with it. "
      "The map cannot know which object is meant, so the best it can do is mark both, half right on average.")


# %% Exercise 3
# the parameters of the two dynamic filter layers of the KITTI preset
import numpy as np

from minihart.model import count_params, init_params, preset

kitti = init_params(preset("kitti"), np.random.default_rng(0))
counts = count_params(kitti)
dfn_counts = {block: counts[block] for block in ("dfn1", "dfn2")}
sizes = {key: sum(kitti[f"dfn{i}.{key}"].size for i in (1, 2)) for key in ("hid_W", "ker_W", "bias_W")}
largest_readout = max(sizes, key=sizes.get)
numbers_per_step = sum(kitti[f"dfn{i}.ker_b"].size + kitti[f"dfn{i}.bias_b"].size for i in (1, 2))
print(dfn_counts, sizes)
print(f"{largest_readout} dominates: each of its output units is one filter weight; per sample and step the MLPs "
      f"write {numbers_per_step:,} numbers (the 1x1 layer maps V1's 384 maps to 5, the 3x3 layer 5 maps to 5)")
