"""NEC 240.4(B) next-size-up limit and 240.4(D) small-conductor overcurrent caps (2023).

240.4(D) applies after correction and adjustment. The 2023 list has eight items: the one new in
2023 is 14 AWG copper-clad aluminum at 10 A under conditions (continuous load ≤ 8 A, OCPD listed and
marked for it), not 8 AWG Al as some summaries say. 14 AWG CCA has no Table 310.16 row, so evsite
rejects it rather than apply the conditional 10 A cap.
"""

from __future__ import annotations

from evsite.code.findings import Citation, nec

CITATION_B: Citation = nec("240.4(B)")
CITATION_D: Citation = nec("240.4(D)")

NEXT_SIZE_UP_MAX_A = 800
"""240.4(B)(3): the next higher standard rating may be used only up to 800 A."""

SMALL_CONDUCTOR_MAX_OCPD_A: dict[str, dict[str, int]] = {
    "cu": {"18 AWG": 7, "16 AWG": 10, "14 AWG": 15, "12 AWG": 20, "10 AWG": 30},
    "al": {"12 AWG": 15, "10 AWG": 25},
}
