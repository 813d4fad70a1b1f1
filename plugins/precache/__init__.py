"""TTS precache: an Airflow provider-style package (hooks, operators, sensors, triggers).

Lives in ``plugins/`` so that the scheduler, workers and the triggerer all import it.
"""

from __future__ import annotations
