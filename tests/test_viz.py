"""minihart/viz.py: what it draws (where the boxes and pixels end up) and what it writes."""
import imageio.v2 as imageio
import numpy as np
import pytest
from matplotlib.patches import Rectangle

from minihart import viz


def _axes():
    return viz.new_figure(figsize=(4, 3)).subplots()


def test_show_image_scales_to_0_1_and_puts_pixel_ij_on_its_unit_square():
    ax = _axes()
    image = np.arange(12.0).reshape(1, 3, 4) * 2 + 5  # (C=1, H=3, W=4), values 5..27
    viz.show_image(ax, image, "t")
    shown = ax.images[0]
    assert shown.get_extent() == [0, 4, 3, 0]  # x from 0 to W, y from H (bottom) to 0 (top)
    data = np.asarray(shown.get_array())
    assert data.shape == (3, 4) and data.min() == 0 and data.max() == 1
    np.testing.assert_allclose(data, (image[0] - 5) / 22)
    assert shown.get_cmap().name == "gray" and ax.get_title() == "t"
    colour = np.random.default_rng(0).random((3, 5, 6))
    viz.show_image(ax, colour)
    assert np.asarray(ax.images[-1].get_array()).shape == (5, 6, 3)  # channels last for RGB
    viz.show_image(ax, np.full((2, 2), 7.0))  # constant image: zeros, no division by zero
    assert not np.asarray(ax.images[-1].get_array()).any()
    for bad in (np.zeros((2, 3, 4)), np.zeros(5)):
        with pytest.raises(ValueError, match="show_image: image must be"):
            viz.show_image(ax, bad)


def test_draw_box_draws_the_rectangle_y_x_h_w_with_its_label():
    ax = _axes()
    viz.draw_box(ax, np.array([10.0, 20.0, 30.0, 40.0]), "r", "pred")
    (rect,) = [p for p in ax.patches if isinstance(p, Rectangle)]
    assert rect.get_xy() == (20.0, 10.0) and rect.get_width() == 40.0 and rect.get_height() == 30.0
    assert not rect.get_fill() and ax.texts[0].get_text() == "pred" and ax.texts[0].get_position() == (20.0, 10.0)


def test_show_glimpse_is_a_figure_of_the_image_with_its_window_and_the_glimpse(tmp_path):
    image, glimpse = np.random.default_rng(1).random((1, 30, 40)), np.random.default_rng(2).random((1, 8, 8))
    fig = viz.show_glimpse(image, [5, 6, 10, 12], glimpse, "title")
    ax_img, ax_g = fig.axes
    assert ax_img.images[0].get_extent() == [0, 40, 30, 0] and np.asarray(ax_g.images[0].get_array()).shape == (8, 8)
    assert [p.get_xy() for p in ax_img.patches] == [(6.0, 5.0)] and fig.get_suptitle() == "title"
    fig.savefig(tmp_path / "g.png", dpi=50)
    assert imageio.imread(tmp_path / "g.png").shape[:2] == (200, 400)  # figsize (8, 4) at 50 dpi


def test_to_rgb8_scales_enlarges_and_uses_a_given_range():
    img = viz.to_rgb8(np.array([[0.0, 1.0], [2.0, 4.0]]), size=3)
    assert img.dtype == np.uint8 and img.shape == (6, 6, 3)
    assert img[0, 0].tolist() == [0, 0, 0] and img[5, 5].tolist() == [255] * 3 and img[0, 3, 0] == 64  # 1/4
    assert (img[:3, :3] == 0).all()  # each pixel a 3 x 3 block
    half = viz.to_rgb8(np.full((1, 2, 2), 0.5), vrange=(0.0, 1.0))
    assert (half == 128).all()  # the range given, not min-max (which would make it 0)


def test_draw_rect_colours_the_outline_only_and_clips_at_the_border():
    img = np.zeros((10, 12, 3), np.uint8)
    viz.draw_rect(img, [2, 3, 4, 5], (255, 0, 0))  # rows 2..5, columns 3..7
    red = (img == [255, 0, 0]).all(axis=2)
    assert red[2, 3:8].all() and red[5, 3:8].all() and red[2:6, 3].all() and red[2:6, 7].all()
    assert not red[3:5, 4:7].any() and red.sum() == 2 * 5 + 2 * 2  # the inside and the rest untouched
    out = np.zeros((10, 12, 3), np.uint8)
    viz.draw_rect(out, [-5, -5, 8, 30], (0, 255, 0))  # mostly outside: clipped, no error
    green = (out == [0, 255, 0]).all(axis=2)
    assert green[2, :].all() and not green[3:].any()  # only the bottom edge (row 2) is inside


def test_tracking_frame_puts_the_boxes_in_their_colours_and_the_panels_beside_the_frame():
    frame = np.zeros((1, 20, 30))
    boxes = dict(truth=[2, 2, 6, 6], pred=[10, 10, 6, 8], att=None)
    out = viz.tracking_frame(frame, boxes, glimpse=np.ones((1, 10, 10)), loc_map=np.ones((5, 5)), scale=2)
    H = 40
    assert out.shape[0] == H and out.dtype == np.uint8
    # the frame is 60 wide at scale 2; the glimpse panel is 10 * (H // 2 // 10) = 20 wide, the map 5 * 4 = 20
    assert out.shape[1] == 60 + 20 + 20
    assert (out[4, 4:16] == viz.COLOURS["truth"]).all() and (out[20, 20:36] == viz.COLOURS["pred"]).all()
    assert not (out[:, :60] == viz.COLOURS["att"]).all(axis=2).any()  # no attention box given


def test_write_video_writes_every_frame_of_a_gif(tmp_path):
    frames = [np.full((8, 10, 3), v, np.uint8) for v in (0, 100, 200)]
    path = viz.write_video(str(tmp_path / "v.gif"), frames, fps=4)
    back = imageio.mimread(path)
    assert len(back) == 3 and back[1].shape[:2] == (8, 10) and abs(int(back[1][..., :3].mean()) - 100) <= 2


def test_plots_of_a_run_are_written_as_pngs(tmp_path):
    history = [dict(step=s, tracking=1 / s, attention=0.5, appearance=0.7, l2=0.01, lambda_tracking=1.0,
                    lambda_attention=1.1, lambda_appearance=0.9, train_iou=0.5, test_iou=0.4) for s in (1, 2, 3)]
    viz.plot_history(history, tmp_path / "training.png")
    assert imageio.imread(tmp_path / "training.png").shape[:2] == (324, 1080)  # (12, 3.6) inches at 90 dpi
    result = dict(iou_per_step=[0.9, 0.8], thresholds=np.linspace(0, 1, 21).tolist(), success=[1.0] * 21, auc=1.0)
    viz.plot_evaluation(result, tmp_path / "evaluation.png")
    assert imageio.imread(tmp_path / "evaluation.png").shape[:2] == (324, 810)
