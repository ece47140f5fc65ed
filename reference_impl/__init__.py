"""The reference implementation of the faultdrill contract (challenges/SPEC.md). Standard library only."""
