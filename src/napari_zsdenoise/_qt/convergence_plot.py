"""The dock's convergence plot: training loss and held-out checks of the plane being computed."""

from __future__ import annotations

from napari_zsdenoise.convergence import PlaneCurve


class ConvergencePlot:
    """A small pyqtgraph plot (``.native``) of one :class:`PlaneCurve`: the loss as a line, the
    held-out checks as dots, and a vertical line and a larger dot at the iteration early stopping
    keeps (the best check while running, the kept iteration afterwards). The y axis is logarithmic
    only when the values span a decade or more: a log axis over a shorter span has no tick labels."""

    def __init__(self) -> None:
        import pyqtgraph as pg
        from qtpy.QtCore import Qt

        self.native = pg.PlotWidget()
        self.native.setMinimumHeight(150)
        self.native.setBackground(None)
        self.log_y = True
        self.native.setLogMode(y=True)
        self.native.setLabel("bottom", "iteration")
        self.native.setLabel("left", "squared error")
        self.native.addLegend(offset=(-5, 5))
        self.loss_line = self.native.plot([], [], pen=pg.mkPen("#4c9be8", width=1.5), name="training loss")
        self.check_dots = self.native.plot([], [], pen=None, symbol="o", symbolSize=6, symbolBrush="#f5a623",
                                           name="held-out error")
        self.kept_line = pg.InfiniteLine(angle=90, movable=False, pen=pg.mkPen("#7ed321", width=1.5, style=Qt.PenStyle.DashLine))
        self.kept_line.setVisible(False)
        self.kept_dot = self.native.plot([], [], pen=None, symbol="o", symbolSize=11, symbolBrush="#7ed321",
                                         name="kept")
        self.native.addItem(self.kept_line)
        self.curve: PlaneCurve | None = None

    def show(self, curve: PlaneCurve | None) -> None:
        """Draw ``curve`` (None: clear the plot)."""
        self.curve = curve
        losses = curve.losses if curve is not None else []
        checks = curve.checks if curve is not None else []
        values = [max(v, 1e-12) for _, v in losses] + [max(v, 1e-12) for _, v in checks]
        log_y = not values or max(values) >= 10 * min(values)
        if log_y != self.log_y:
            self.log_y = log_y
            self.native.setLogMode(y=log_y)
        self.loss_line.setData([i for i, _ in losses], [max(v, 1e-12) for _, v in losses])
        self.check_dots.setData([i for i, _ in checks], [max(v, 1e-12) for _, v in checks])
        kept = None if curve is None else curve.kept_iteration
        if kept is None and curve is not None and curve.best_check is not None:
            kept = curve.best_check[0]
        self.kept_line.setVisible(kept is not None)
        if kept is not None:
            self.kept_line.setValue(kept)
        at_kept = [(i, max(v, 1e-12)) for i, v in checks if i == kept]
        self.kept_dot.setData([i for i, _ in at_kept], [v for _, v in at_kept])
