"""Central finite differences of a session's scalar `loss` output, for gradient tests."""


def central_difference(session, feeds: dict, name: str, index: int, eps: float) -> float:
    """d loss / d feeds[name].flat[index], perturbing the array in place and restoring it."""
    flat = feeds[name].reshape(-1)
    saved = flat[index]
    flat[index] = saved + eps
    up = float(session.run(["loss"], feeds)[0])
    flat[index] = saved - eps
    down = float(session.run(["loss"], feeds)[0])
    flat[index] = saved
    return (up - down) / (2 * eps)
