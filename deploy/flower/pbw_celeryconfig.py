"""Celery settings for Flower: the workers' key prefix, so Flower sees their queue, events and replies.

The workers' Celery keys live under `<[cluster] key_prefix>-celery:` (kombu `global_keyprefix`, set in
playbooks_worker/cluster/app.py; `pbw-celery:` by default). kombu prefixes every key *and* every pub/sub
channel with it, so a Flower without it shows no workers, no tasks and a queue length of 0: it reads the
unprefixed `playbooks` list, listens to unprefixed event channels and broadcasts unprefixed `inspect`
requests. Flower (>= 2.0) takes this from its Celery app's configuration, loaded with
`celery --config pbw_celeryconfig flower` (this file on PYTHONPATH); it also uses `global_keyprefix` for the
Broker tab's queue lengths.

Keep PLAYBOOKS_CLUSTER__KEY_PREFIX the same here and on the workers (unset: the default, pbw).
"""

import os

broker_transport_options = {
    "global_keyprefix": os.environ.get("PLAYBOOKS_CLUSTER__KEY_PREFIX", "pbw") + "-celery:",
}
