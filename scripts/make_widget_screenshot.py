"""Screenshot of napari with the denoising dock mid-run: the preview layer and the convergence plot.

Opens a real napari window, loads the bundled noisy sample, docks the plugin's widget,
starts a short run of the recommended preset and grabs the whole window once the preview
is on screen and the convergence plot has a few held-out checks; then lets the run finish
so that it ends cleanly. Only the widget's public pieces are driven (layer_combo,
method_combo, settings, start, is_running), so the script survives changes to its layout.

Usage (from the repository root; needs a display, e.g. a virtual one):
    xvfb-run -a -s "-screen 0 1600x1000x24" env PYTHONPATH=src python scripts/make_widget_screenshot.py
        [--iterations 200] [--checks 5] [--out docs/images/widget.png]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCK_NAME = "Zero-shot denoising"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=200, help="iteration budget of the short run")
    parser.add_argument("--checks", type=int, default=5,
                        help="grab once the convergence plot shows this many held-out checks")
    parser.add_argument("--grab-after", type=float, default=90.0,
                        help="seconds after the first preview to grab anyway, should the checks not be readable")
    parser.add_argument("--timeout", type=float, default=900.0, help="give up after this many seconds")
    parser.add_argument("--size", type=int, nargs=2, default=(1600, 1000), metavar=("WIDTH", "HEIGHT"))
    parser.add_argument("--dock-width", type=int, default=600, help="width of the dock in pixels")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "widget.png")
    return parser.parse_args()


def held_out_checks(widget) -> int:
    # Not part of the widget's stable surface: read defensively, and fall back to a timer.
    controller = getattr(widget, "_controller", None)
    curve = getattr(getattr(controller, "convergence", None), "current", None)
    return len(getattr(curve, "checks", None) or [])


def main() -> None:
    args = parse_args()
    import napari
    from qtpy.QtWidgets import QApplication

    from napari_zsdenoise._qt.widget import DenoiseWidget
    from napari_zsdenoise.methods import recommended_method
    from napari_zsdenoise.sample_data import sample_path

    viewer = napari.Viewer(show=True, title="napari")
    window = viewer.window._qt_window
    window.resize(*args.size)
    layer = viewer.open(str(sample_path("cells2d_noisy.tif")), name="cells2d_noisy")[0]
    widget = DenoiseWidget(viewer)
    dock = viewer.window.add_dock_widget(widget, name=DOCK_NAME, area="right")
    from qtpy.QtCore import Qt

    # The dock would otherwise take the width of its longest line and squeeze the canvas.
    window.resizeDocks([dock], [args.dock_width], Qt.Orientation.Horizontal)
    widget.layer_combo.value = layer
    widget.method_combo.value = recommended_method()
    widget.settings["iterations"].value = args.iterations

    app = QApplication.instance()

    def pump(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            app.processEvents()
            time.sleep(0.02)

    pump(1.0)
    # Fit the image to the canvas as it is once the dock took its place.
    viewer.reset_view()
    pump(0.5)
    widget.start()
    if not widget.is_running:
        sys.exit("the run did not start; see the dock's status line")
    started, first_preview, grabbed = time.monotonic(), None, None
    while widget.is_running and time.monotonic() - started < args.timeout:
        pump(0.2)
        preview = any(other.name.endswith("[preview]") for other in viewer.layers)
        if preview and first_preview is None:
            first_preview = time.monotonic()
        enough = held_out_checks(widget) >= args.checks or (
            first_preview is not None and time.monotonic() - first_preview >= args.grab_after)
        if grabbed is None and preview and enough:
            # Let the latest preview and plot update reach the screen before grabbing.
            pump(0.5)
            grabbed = window.grab()
            print(f"grabbed at {time.monotonic() - started:.0f} s, {held_out_checks(widget)} held-out checks")
    if widget.is_running:
        sys.exit(f"the run did not finish within {args.timeout:.0f} s")
    pump(1.0)
    if grabbed is None:
        # The run ended before the conditions held (a very fast machine): show the finished state.
        grabbed = window.grab()
        print("the run ended before a mid-run grab; grabbed the finished state")
    print(f"run finished after {time.monotonic() - started:.0f} s; layers: {[other.name for other in viewer.layers]}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if not grabbed.save(str(args.out)):
        sys.exit(f"could not write {args.out}")
    print(f"wrote {args.out} ({grabbed.width()}×{grabbed.height()})")
    viewer.close()


if __name__ == "__main__":
    main()
