"""`make bench`: every benchmark, one after the other (half an hour or more; needs ~10 GB of disk,
most of it the catalogs of 1M and 5M objects ``bench_catalog`` builds once and caches)."""

from benchmarks import (
    bench_ai,
    bench_catalog,
    bench_dedup,
    bench_fingerprint,
    bench_inventory,
    bench_near_duplicates,
    bench_reference_index,
    bench_references,
)


def main() -> None:
    bench_inventory.main()
    print()
    bench_fingerprint.main()
    print()
    bench_dedup.main()
    print()
    bench_near_duplicates.main([])
    print()
    bench_ai.main()
    print()
    bench_references.main()
    print()
    bench_reference_index.main()
    print()
    bench_catalog.main([])


if __name__ == "__main__":
    main()
