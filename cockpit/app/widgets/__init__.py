"""The cockpit's widgets: one widget per file, named for what it shows."""

from cockpit.app.widgets.results_table import ResultRow, ResultsTable
from cockpit.app.widgets.status_bar import StatusBar
from cockpit.app.widgets.train_log import TrainLog, format_step

__all__ = ["ResultRow", "ResultsTable", "StatusBar", "TrainLog", "format_step"]
