"""Deliberately broken submissions (one defect each) that test the graders; see matrix.toml."""
