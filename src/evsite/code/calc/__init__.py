"""Pure calculators behind `evsite calc` and the design checks: each returns numbers plus the
arithmetic that produced them. The public names are re-exported from `evsite.code.sizing`."""
