"""Product events: derived in the transaction of each change, read by the feed, pushed by webhooks.

``pending`` notes each audit event as it is recorded; ``writer`` turns them
into product events (``types``) just before the transaction commits; ``feed``
reads them back in order (``GET /api/v1/events``) and purges them after retention.
"""
