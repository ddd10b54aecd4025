"""argon2id cost with the production parameters: ``python -m bench.argon2_verify``.

Times ``verify_password`` for a known account and ``burn_time`` (the dummy
verify an unknown account gets), interleaved so both see the same load: the two
must cost the same, and the figure says how many password sign-ins a core does
per second.
"""

from __future__ import annotations

import os
import statistics
import time

from scim_server.services.passwords import Hashing, burn_time, hash_password, verify_password

ROUNDS = 60


def main() -> None:
    hashing = Hashing()  # the configuration defaults: t=2, m=19 MiB, p=1 (OWASP's choice)
    stored = hash_password(hashing, "correct horse battery staple")
    burn_time(hashing, "warm up")
    known, unknown = [], []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        verify_password(hashing, stored, "a wrong guess")
        known.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        burn_time(hashing, "a wrong guess")
        unknown.append((time.perf_counter() - start) * 1000)
    print(
        f"argon2id {stored.split('$')[3]} on {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}"
    )
    for label, times in (
        ("known account (verify)", known),
        ("unknown account (burn_time)", unknown),
    ):
        times.sort()
        print(
            f"{label}: median {statistics.median(times):.1f} ms, "
            f"p90 {times[int(len(times) * 0.9)]:.1f} ms, min {times[0]:.1f} ms (n={ROUNDS})"
        )


if __name__ == "__main__":
    main()
