"""Multi-tenant alerting: policies, the batched rule engine and the notification pipeline.

Layout (one job per module, so each can be read and tested alone):

- ``policy``   the policy document: model, YAML/JSON parsing with line numbers, validation
  with field paths (``rules[2].threshold``).
- ``engine``   PURE: plans one PromQL query per distinct (metric, level, aggregation, period),
  evaluates every (rule, entity) with numpy and runs the alert state machine.
- ``repeat``, ``windows``   PURE: when a repeat is due; whether a time window is open.
- ``flap``     PURE: flap detection over recent state changes.
- ``notify/``  the pipeline stages after the engine (silence, window, repeat, dedup, flap,
  quota, retry, history) and ``email.py``, the only importer of aiosmtplib.
- ``cycle``    one evaluation cycle over the state store: the glue used live and by backtests.
- ``backtest`` replays recorded history through the same cycle with a fake clock.
- ``service``  what the API and the console call.

``hub.alerts`` never imports ``hub.collectors``: the runtime passes the catalogue's query
builder, the Prometheus query functions and the log search in as callables.
"""
