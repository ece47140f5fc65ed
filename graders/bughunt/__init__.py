"""Bug hunts: a copy of the reference with defects from `defects.toml` (the answer key,
interviewer only), chosen by seed; `hunt.verify` says whether a fix holds."""
