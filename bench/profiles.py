"""Run sizes: the full run (the figures in BENCHMARKS.md) and a quick smoke run.

The full run has to finish in under ten minutes on a 2-core machine for both
backends, which is what bounds the measuring windows below.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Profile:
    """How big the data set is and how long each measurement lasts."""

    name: str
    org_sizes: tuple[int, ...]
    big_group_size: int  # one group of this size, in the largest organization
    small_groups_per_org: int
    small_group_size: int
    concurrencies: tuple[int, ...]
    warmup_s: float
    duration_s: float
    max_requests: int  # a run also stops after this many measured requests
    leavers: int  # users added for each DELETE run to remove
    ascii_only: bool = False  # ASCII addresses (for peers that refuse others)
    # Password sign-ins (``bench.signin``): each argon2 verify costs tens of ms, so a
    # run needs longer than the SCIM ones to collect enough samples for a p99.
    sign_in_duration_s: float = 4.0
    sign_in_users: int = 400  # users given a password (a quarter sign in right)

    @property
    def largest(self) -> int:
        return max(self.org_sizes)


def data_only(
    name: str, size: int, *, big_group_size: int, small_groups_per_org: int, small_group_size: int
) -> Profile:
    """A data set for a scenario that measures on its own (``bench.bulk``): one organization
    size, no timed runs, no leavers."""
    return Profile(
        name=name,
        org_sizes=(size,),
        big_group_size=big_group_size,
        small_groups_per_org=small_groups_per_org,
        small_group_size=small_group_size,
        concurrencies=(1,),
        warmup_s=0,
        duration_s=0,
        max_requests=0,
        leavers=0,
    )


FULL = Profile(
    name="full",
    org_sizes=(1_000, 10_000, 100_000),
    big_group_size=50_000,
    small_groups_per_org=20,
    small_group_size=10,
    concurrencies=(1, 8, 32),
    warmup_s=0.4,
    duration_s=2.0,
    max_requests=20_000,
    leavers=1_500,
)

QUICK = Profile(
    name="quick",
    org_sizes=(1_000, 10_000),
    big_group_size=5_000,
    small_groups_per_org=20,
    small_group_size=10,
    concurrencies=(1, 8, 32),
    warmup_s=0.2,
    duration_s=0.6,
    max_requests=5_000,
    leavers=300,
    sign_in_duration_s=2.0,
)
