"""Rain-rate windows: their storage schema (uint16 at 0.01 mm/h), the synthetic rain generator, the collator."""
