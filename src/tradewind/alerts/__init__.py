"""The alerts component: tells each user about their fills, pauses, kill switch, daily loss limit,
disconnected exchanges and a daily summary, on the channels they chose (a signed webhook, Telegram, e-mail,
the open web app).

It listens on the bus (``events.user.*``, the market-data subjects) and never sits on core's path: core
publishes and goes on; a slow or failing channel delays only its own queue. ``events`` (what is told and
how it reads), ``signing`` and ``targets`` are pure and shared with the web app; ``service`` is the
running component, ``delivery`` its queues and retries, ``senders`` one class per channel kind.
"""
