import math

import numpy as np
import pytest

from reference.tracking.estimation import estimate_from_three_points
from reference.tracking.helix import C_LIGHT, helix_advance


@pytest.mark.parametrize("pt,eta,phi,q,bz", [(1.0, 0.3, 0.4, 1, 2.0), (0.6, -1.8, -2.9, -1, 2.0),
                                             (12.0, 1.1, 3.0, 1, 1.99724), (2.0, 0.0, -0.5, -1, -2.0)])
def test_seed_fit_recovers_noise_free_helix(pt, eta, phi, q, bz):
    theta = 2 * math.atan(math.exp(-eta))
    p = pt / math.sin(theta)
    t = np.array([math.cos(phi) * math.sin(theta), math.sin(phi) * math.sin(theta), math.cos(theta)])
    kappa = C_LIGHT * bz * q / p
    start = np.array([0.01, -0.02, 12.0])
    pts = []
    for s in (40.0, 90.0, 150.0):
        pts.append(np.array(helix_advance(*start, *t, kappa, s))[:3])
    t_b = np.array(helix_advance(*start, *t, kappa, 40.0))[3:6]
    res = np.empty(5)
    assert estimate_from_three_points(*pts[0], *pts[1], *pts[2], bz, res)
    assert res[0] == pytest.approx(math.atan2(t_b[1], t_b[0]), abs=1e-9)
    assert res[1] == pytest.approx(math.acos(t_b[2]), abs=1e-9)
    assert res[2] == pytest.approx(q / p, rel=1e-7)
    assert res[4] == q
