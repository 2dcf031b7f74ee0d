"""`make bench`: every benchmark, one after the other (several minutes; needs ~3 GB of disk)."""

from benchmarks import (
    bench_ai,
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


if __name__ == "__main__":
    main()
