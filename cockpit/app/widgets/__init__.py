"""The cockpit's widgets: one widget per file, named for what it shows."""

from cockpit.app.widgets.agent_pane import AgentPane
from cockpit.app.widgets.diff_view import DiffView
from cockpit.app.widgets.live_curves import LiveCurves
from cockpit.app.widgets.pane_tabs import PaneTabs
from cockpit.app.widgets.program_editor import ProgramEditor
from cockpit.app.widgets.results_table import ResultsTable, TableRow
from cockpit.app.widgets.staircase import StaircasePlot
from cockpit.app.widgets.status_bar import StatusBar
from cockpit.app.widgets.train_log import TrainLog, format_step
from cockpit.app.widgets.workers_strip import WorkersStrip

__all__ = [
    "AgentPane",
    "DiffView",
    "LiveCurves",
    "PaneTabs",
    "ProgramEditor",
    "TableRow",
    "ResultsTable",
    "StaircasePlot",
    "StatusBar",
    "TrainLog",
    "WorkersStrip",
    "format_step",
]
