"""The notification pipeline, one stage per module (after Alertmanager's):

``repeating`` (which alerts owe a notice now: first send, repeats per severity, resolve,
no-data, closed) → ``silence`` → ``damping`` (flap damping) → ``dedup`` (the notification log:
a notice key is recorded once) → ``window`` (policy window and each receiver's quiet hours;
notices outside them are held and delivered when they open) → ``quota`` (per tenant per hour,
overflow goes into one digest) → persisted ``outbox`` → ``email`` delivery with ``retry``
and back-off → ``history``.

``pipeline.process`` runs the stages for one engine cycle as a sequence of calls: damping
learns the changes, ``decide`` builds the notices owed (``repeating``), ``gate`` applies the
log, silences and flap holds, ``damping`` adds flap summaries, ``routing`` makes the messages
(``window``) and records what reached nobody, then ``quota``. Everything it decides is written
by the state store in the same transaction as the engine's states.
"""
