"""NEC 240.4(B) next-size-up limit and 240.4(D) small-conductor overcurrent caps (2023).

240.4(D) applies after correction and adjustment; 8 AWG Al/CCA (reportedly added in 2023) is not
included because we could not confirm it in the 2023 text.
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
