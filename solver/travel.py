"""Travel minutes between origins (people, depots) and incidents, vectorised with numpy.

Great-circle distance (haversine, mean Earth radius 6371.0088 km) × road factor / speed, or an
explicit ``travel.matrix`` of minutes as a routing engine's table service returns it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from solver.snapshot import Travel

__all__ = ["EARTH_RADIUS_KM", "haversine_km", "travel_minutes"]

EARTH_RADIUS_KM = 6371.0088
_CHUNK = 1 << 22  # cells per block, so temporaries stay a few tens of MB at any size

FloatArray = npt.NDArray[np.float64]


def haversine_km(
    lat1: npt.ArrayLike, lon1: npt.ArrayLike, lat2: npt.ArrayLike, lon2: npt.ArrayLike
) -> FloatArray:
    """Great-circle distance in km; the arguments broadcast against each other."""
    p1, l1, p2, l2 = (np.radians(np.asarray(a, dtype=np.float64)) for a in (lat1, lon1, lat2, lon2))
    a = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin((l2 - l1) / 2) ** 2
    return np.asarray(2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0))))


def travel_minutes(
    travel: Travel,
    origin_ids: Sequence[str],
    origin_lat: npt.ArrayLike,
    origin_lon: npt.ArrayLike,
    incident_ids: Sequence[str],
    incident_lat: npt.ArrayLike,
    incident_lon: npt.ArrayLike,
) -> npt.NDArray[np.float32]:
    """Minutes from every origin to every incident, shape ``(incidents, origins)``.

    Incident-major so that one incident's column of candidates is contiguous. With
    ``travel.matrix`` a missing pair is unreachable (``inf``).
    """
    n_inc, n_org = len(incident_ids), len(origin_ids)
    if travel.matrix is not None:
        out = np.full((n_inc, n_org), np.inf, dtype=np.float32)
        inc_index = {ident: k for k, ident in enumerate(incident_ids)}
        for o, ident in enumerate(origin_ids):
            row = travel.matrix.get(ident)
            if not row:
                continue
            cols = [inc_index[i] for i in row if i in inc_index]
            out[cols, o] = [row[i] for i in row if i in inc_index]
        return out
    out = np.empty((n_inc, n_org), dtype=np.float32)
    # hav(θ) = (1 - cos θ) / 2 and cos θ is the dot product of the two points' unit vectors,
    # so the haversine of every pair comes out of one matrix product (BLAS) per block.
    u_org = _unit(origin_lat, origin_lon).T
    u_inc = _unit(incident_lat, incident_lon)
    factor = travel.road_factor / travel.speed_kmh * 60.0 * 2 * EARTH_RADIUS_KM
    step = max(1, _CHUNK // max(1, n_org))
    for start in range(0, n_inc, step):
        stop = min(n_inc, start + step)
        hav = u_inc[start:stop] @ u_org
        np.subtract(1.0, hav, out=hav)
        np.multiply(hav, 0.5, out=hav)
        np.clip(hav, 0.0, 1.0, out=hav)
        np.sqrt(hav, out=hav)
        np.arcsin(hav, out=hav)
        np.multiply(hav, factor, out=hav)
        out[start:stop] = hav
    return out


def _unit(lat: npt.ArrayLike, lon: npt.ArrayLike) -> FloatArray:
    """Points on the unit sphere, shape ``(n, 3)``."""
    p = np.radians(np.asarray(lat, dtype=np.float64))
    lam = np.radians(np.asarray(lon, dtype=np.float64))
    return np.column_stack([np.cos(p) * np.cos(lam), np.cos(p) * np.sin(lam), np.sin(p)])
