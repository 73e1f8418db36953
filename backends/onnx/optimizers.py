"""Optimizer updates, gradient clipping and weight constraints with Keras's formulas, in primitives.

Each optimizer declares its slots (name and initial value) and an update rule; the training step
graph applies the rule to every parameter. `lr` is fed each step (schedules and Keras 2's `decay`
are evaluated on the host), `t` is the 1-based step count as a float.
"""
from __future__ import annotations

import numpy as np

from ...ir import functions as fn
from . import primitives as P

EPSILON = 1e-7


SLOTS = {  # optimizer -> its per-parameter slots (some only with an option on)
    "sgd": lambda o: ["momentum"] if o.momentum else [],
    "rmsprop": lambda o: ["velocity"] + (["momentum"] if o.momentum else []) + (["average_gradient"] if o.centered else []),
    "adagrad": lambda o: ["accumulator"],
    "adadelta": lambda o: ["accumulated_grad", "accumulated_delta"],
    "adam": lambda o: ["m", "v"] + (["v_hat"] if o.amsgrad else []),
    "adamw": lambda o: ["m", "v"] + (["v_hat"] if o.amsgrad else []),
    "adamax": lambda o: ["m", "u"],
    "nadam": lambda o: ["m", "v"],
}


def slot_names(opt) -> list[str]:
    return SLOTS[opt.name](opt)


def initial_slot(opt, slot: str, shape: tuple[int, ...]) -> np.ndarray:
    value = opt.initial_accumulator_value if slot == "accumulator" else 0.0
    return np.full(shape, value, np.float32)


def global_slots(opt) -> dict[str, float]:
    """Scalar state shared by all parameters (Nadam's running product of momentum factors)."""
    return {"u_product": 1.0} if opt.name == "nadam" else {}


def clip_gradients(opt, grads: list):
    if opt.clipvalue:
        grads = [P.clip(g, min=-opt.clipvalue, max=opt.clipvalue) for g in grads]
    if opt.clipnorm:
        grads = [g * (opt.clipnorm / P.maximum(_norm(g), opt.clipnorm)) for g in grads]
    if opt.global_clipnorm:
        total = P.sqrt(sum(P.reduce_sum(g * g, axes=tuple(range(g.rank)), keepdims=False) for g in grads))
        grads = [g * (opt.global_clipnorm / P.maximum(total, opt.global_clipnorm)) for g in grads]
    return grads


def _norm(g):
    return P.sqrt(P.reduce_sum(g * g, axes=tuple(range(g.rank)), keepdims=False))


def update(opt, w, g, slots: dict, shared: dict, lr, t):
    """New value of `w` and of its slots."""
    name = opt.name
    if name == "sgd":
        if not opt.momentum:
            return w - lr * g, {}
        m = opt.momentum * slots["momentum"] - lr * g
        step = opt.momentum * m - lr * g if opt.nesterov else m
        return w + step, {"momentum": m}
    if name == "rmsprop":
        rho = opt.rho
        v = rho * slots["velocity"] + (1.0 - rho) * g * g
        new = {"velocity": v}
        denominator = v
        if opt.centered:
            avg = rho * slots["average_gradient"] + (1.0 - rho) * g
            new["average_gradient"] = avg
            denominator = v - avg * avg
        increment = lr * g / P.sqrt(denominator + opt.epsilon)
        if opt.momentum:
            m = opt.momentum * slots["momentum"] + increment
            new["momentum"] = m
            increment = m
        return w - increment, new
    if name == "adagrad":
        acc = slots["accumulator"] + g * g
        return w - lr * g / P.sqrt(acc + opt.epsilon), {"accumulator": acc}
    if name == "adadelta":
        rho, eps = opt.rho, opt.epsilon
        acc_g = rho * slots["accumulated_grad"] + (1.0 - rho) * g * g
        delta = P.sqrt(slots["accumulated_delta"] + eps) / P.sqrt(acc_g + eps) * g
        acc_d = rho * slots["accumulated_delta"] + (1.0 - rho) * delta * delta
        return w - lr * delta, {"accumulated_grad": acc_g, "accumulated_delta": acc_d}
    if name in ("adam", "adamw"):
        b1, b2 = opt.beta_1, opt.beta_2
        if name == "adamw":
            w = w - w * (lr * opt.weight_decay)
        alpha = lr * P.sqrt(1.0 - b2 ** t) / (1.0 - b1 ** t)
        m = slots["m"] + (g - slots["m"]) * (1.0 - b1)
        v = slots["v"] + (g * g - slots["v"]) * (1.0 - b2)
        new = {"m": m, "v": v}
        if opt.amsgrad:
            v = P.maximum(slots["v_hat"], v)
            new["v_hat"] = v
        return w - alpha * m / (P.sqrt(v) + opt.epsilon), new
    if name == "adamax":
        b1, b2 = opt.beta_1, opt.beta_2
        m = slots["m"] + (g - slots["m"]) * (1.0 - b1)
        u = P.maximum(b2 * slots["u"], P.abs(g))
        return w - (lr / (1.0 - b1 ** t)) * m / (u + opt.epsilon), {"m": m, "u": u}
    if name == "nadam":
        b1, b2 = opt.beta_1, opt.beta_2
        u_t = b1 * (1.0 - 0.5 * 0.96 ** t)  # Keras's momentum schedule (0.96 per step)
        u_t1 = b1 * (1.0 - 0.5 * 0.96 ** (t + 1.0))
        u_product_t = shared["u_product"] * u_t
        u_product_t1 = u_product_t * u_t1
        m = slots["m"] + (g - slots["m"]) * (1.0 - b1)
        v = slots["v"] + (g * g - slots["v"]) * (1.0 - b2)
        m_hat = u_t1 * m / (1.0 - u_product_t1) + (1.0 - u_t) * g / (1.0 - u_product_t)
        v_hat = v / (1.0 - b2 ** t)
        return w - lr * m_hat / (P.sqrt(v_hat) + opt.epsilon), {"m": m, "v": v}
    raise NotImplementedError(f"optimizer {name}")


def update_shared(opt, shared: dict, t) -> dict:
    if opt.name == "nadam":
        return {"u_product": shared["u_product"] * (opt.beta_1 * (1.0 - 0.5 * 0.96 ** t))}
    return {}


def constrain(constraint, w):
    """Keras's weight constraints, applied after each update."""
    if constraint is None:
        return w
    axes = getattr(constraint, "axis", 0)
    axes = tuple(axes) if isinstance(axes, list) else (axes,)

    def norms():
        return P.sqrt(P.reduce_sum(w * w, axes=axes, keepdims=True))

    if isinstance(constraint, fn.NonNeg):
        return w * P.cast(P.greater_equal(w, 0.0), dtype="float32")
    if isinstance(constraint, fn.MaxNorm):
        n = norms()
        return w * (P.clip(n, min=0.0, max=constraint.max_value) / (n + EPSILON))
    if isinstance(constraint, fn.UnitNorm):
        return w / (norms() + EPSILON)
    if isinstance(constraint, fn.MinMaxNorm):
        n = norms()
        desired = constraint.rate * P.clip(n, min=constraint.min_value, max=constraint.max_value) + \
            (1.0 - constraint.rate) * n
        return w * (desired / (n + EPSILON))
    raise NotImplementedError(f"constraint {constraint.name}")


def penalty(regularizer, x):
    """Keras's L1/L2 penalty: l1 * sum|x| + l2 * sum(x^2), no factor one half."""
    if regularizer is None:
        return None
    axes = tuple(range(x.rank))
    total = None
    if getattr(regularizer, "l1", 0.0):
        total = regularizer.l1 * P.reduce_sum(P.abs(x), axes=axes, keepdims=False)
    if getattr(regularizer, "l2", 0.0):
        term = regularizer.l2 * P.reduce_sum(x * x, axes=axes, keepdims=False)
        total = term if total is None else total + term
    return total
