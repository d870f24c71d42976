"""Multi-threaded CPU kernels for two places where Jittor 1.3.11 trails PyTorch on CPU.

Jittor fuses element-wise and reduction operations into kernels it generates and compiles
itself, and on the CPU those kernels run on one thread; only convolutions and matrix products
(oneDNN) use every core. PyTorch runs both kinds on every core. Measured on a 2-core machine,
the convolutions cost the same in both frameworks and the training-step gap came from those
single-threaded kernels, chiefly bilinear resizing (now matrix products, see
:func:`jmedbench_jittor.layers.resize_bilinear`) and, here:

- BatchNorm in training mode: per-channel statistics, normalisation and their backward pass;
- the Adam update: four reads and three writes of every weight, every step.

Both are written here as OpenMP loops through ``jt.code`` (Jittor compiles its kernels with
``-fopenmp``), with the formulas of their torch counterparts. The kernels are compiled once
per data type and cached on disk like any Jittor kernel.
"""

from __future__ import annotations

import math
from typing import Sequence

from jmedbench_jittor.runtime import import_jittor

jt = import_jittor()

# One channel per loop iteration: its statistics over the N planes of x, then (the planes
# still in cache) its normalised output. Sums in double: a channel holds 10^4-10^5 values,
# and E[x^2] - E[x]^2 in float would cancel digits away.
_BN_FORWARD = r"""
const int64_t N = in0_shape0, C = in0_shape1, HW = in0_shape2 * in0_shape3;
const float* X = in0_p; const float* W = in1_p; const float* B = in2_p;
float* Y = out0_p; float* MEAN = out1_p; float* VAR = out2_p;
const float eps = data["eps"];
#pragma omp parallel for schedule(static)
for (int64_t c = 0; c < C; c++) {
    double sum = 0.0, sum_sq = 0.0;
    for (int64_t n = 0; n < N; n++) {
        const float* x = X + (n * C + c) * HW;
        for (int64_t i = 0; i < HW; i++) { double v = x[i]; sum += v; sum_sq += v * v; }
    }
    const double mean = sum / (N * HW);
    const double var = fmax(sum_sq / (N * HW) - mean * mean, 0.0);
    const float scale = W[c] / sqrt(var + eps), shift = B[c] - mean * scale;
    for (int64_t n = 0; n < N; n++) {
        const float* x = X + (n * C + c) * HW;
        float* y = Y + (n * C + c) * HW;
        for (int64_t i = 0; i < HW; i++) y[i] = x[i] * scale + shift;
    }
    MEAN[c] = mean; VAR[c] = var;
}
"""

# torch's batch-norm backward: with xhat = (x - mean) * invstd and M = N*H*W,
# dbias = sum(dy), dweight = sum(dy * xhat), dx = weight * invstd * (dy - dbias/M - xhat *
# dweight/M); one channel per iteration as above.
_BN_BACKWARD = r"""
const int64_t N = in0_shape0, C = in0_shape1, HW = in0_shape2 * in0_shape3;
const float* DY = in0_p; const float* X = in1_p; const float* W = in2_p;
const float* MEAN = in3_p; const float* VAR = in4_p;
float* DX = out0_p; float* DW = out1_p; float* DB = out2_p;
const float eps = data["eps"];
#pragma omp parallel for schedule(static)
for (int64_t c = 0; c < C; c++) {
    const float mean = MEAN[c], invstd = 1.0 / sqrt((double)VAR[c] + eps);
    double sum_dy = 0.0, sum_dy_xmu = 0.0;
    for (int64_t n = 0; n < N; n++) {
        const float* dy = DY + (n * C + c) * HW; const float* x = X + (n * C + c) * HW;
        for (int64_t i = 0; i < HW; i++) { sum_dy += dy[i]; sum_dy_xmu += dy[i] * (x[i] - mean); }
    }
    const double M = (double)(N * HW);
    const float k = W[c] * invstd, mean_dy = sum_dy / M;
    const float proj = sum_dy_xmu / M * invstd * invstd;
    for (int64_t n = 0; n < N; n++) {
        const float* dy = DY + (n * C + c) * HW; const float* x = X + (n * C + c) * HW;
        float* dx = DX + (n * C + c) * HW;
        for (int64_t i = 0; i < HW; i++) dx[i] = k * (dy[i] - mean_dy - (x[i] - mean) * proj);
    }
    DW[c] = sum_dy_xmu * invstd; DB[c] = sum_dy;
}
"""


class BatchNormTrain(jt.Function):
    """Training-mode batch norm of an (N, C, H, W) float32 input: returns the output and the
    batch mean and (biased) variance per channel; differentiable in input, weight and bias."""

    def execute(self, x, weight, bias, eps: float):
        channels = x.shape[1]
        y, mean, var = jt.code([x.shape, (channels,), (channels,)], [x.dtype] * 3,
                               [x, weight, bias], cpu_src=_BN_FORWARD, data={"eps": eps})
        self.saved = (x, weight, mean, var, eps)
        return y, mean.stop_grad(), var.stop_grad()

    def grad(self, grad_y, grad_mean=None, grad_var=None):
        x, weight, mean, var, eps = self.saved
        channels = x.shape[1]
        return tuple(jt.code([x.shape, (channels,), (channels,)], [x.dtype] * 3,
                             [grad_y, x, weight, mean, var], cpu_src=_BN_BACKWARD,
                             data={"eps": eps}))


# torch.optim.Adam's update (L2 weight decay added to the gradient, eps after the bias-
# corrected square root), one element per iteration.
_ADAM = r"""
const int64_t n = in0->num;
const float* P = in0_p; const float* G = in1_p; const float* M = in2_p; const float* V = in3_p;
float* PO = out0_p; float* MO = out1_p; float* VO = out2_p;
const float step_size = data["step_size"], b1 = data["beta1"], b2 = data["beta2"];
const float eps = data["eps"], wd = data["weight_decay"], bc2_sqrt = data["bc2_sqrt"];
#pragma omp parallel for schedule(static) if(n > 32768)
for (int64_t i = 0; i < n; i++) {
    const float g = G[i] + wd * P[i];
    const float m = M[i] + (1.0f - b1) * (g - M[i]);
    const float v = b2 * V[i] + (1.0f - b2) * g * g;
    MO[i] = m; VO[i] = v;
    PO[i] = P[i] - step_size * m / (sqrtf(v) / bc2_sqrt + eps);
}
"""


class Adam:
    """torch.optim.Adam for Jittor parameters, the same arithmetic (Jittor's own Adam puts eps
    inside the bias correction and runs one single-threaded kernel per parameter).
    ``step(loss)`` computes the gradients and updates every parameter, as Jittor's optimisers
    do."""

    def __init__(self, params: Sequence, lr: float, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0) -> None:
        self.params = list(params)
        if not self.params:
            raise ValueError("Adam got no parameters to optimise")
        self.lr, self.betas, self.eps, self.weight_decay = lr, betas, eps, weight_decay
        self.exp_avg = [jt.zeros(p.shape, p.dtype).stop_grad() for p in self.params]
        self.exp_avg_sq = [jt.zeros(p.shape, p.dtype).stop_grad() for p in self.params]
        self.steps = 0

    def step(self, loss) -> None:
        grads = jt.grad(loss, self.params)
        self.apply(grads)

    def apply(self, grads: Sequence) -> None:
        """One update from the given gradients (one per parameter)."""
        self.steps += 1
        beta1, beta2 = self.betas
        data = {"step_size": self.lr / (1 - beta1 ** self.steps), "beta1": beta1,
                "beta2": beta2, "eps": self.eps, "weight_decay": self.weight_decay,
                "bc2_sqrt": math.sqrt(1 - beta2 ** self.steps)}
        # Gradients enter as stop-grad: otherwise the new weights would remember the graph
        # that made the gradients, and every step would keep the previous one's alive. (Not
        # jt.no_grad(): an update under it leaves the parameter stop-grad, and training stops.)
        for p, g, m, v in zip(self.params, grads, self.exp_avg, self.exp_avg_sq):
            new_p, new_m, new_v = jt.code([p.shape] * 3, [p.dtype] * 3,
                                          [p, g.stop_grad(), m, v], cpu_src=_ADAM, data=data)
            p.update(new_p)
            m.update(new_m)
            v.update(new_v)
