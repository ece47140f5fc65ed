"""faultdrill."""
