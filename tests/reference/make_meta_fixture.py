"""Reference values for the self-distillation losses and the MetaDistiller meta-gradient.

Writes two MDFX fixture files (the format of tests/support/fixture.h, written by the Fixture
class of make_fixtures.py) under tests/fixtures/:

losses.bin — train::student_loss of every method on fixed head logits, pooled head features,
    labels and generator targets, for label smoothing 0 and 0.1 and a feature hint beta:
        baseline:      CE_s(z_S, y)
        byot / meta:   w CE_s(z_S, y) + sum_{s<S} [(1 - a) CE_s(z_s, y) + a t KL(softmax(t_s/T) || softmax(z_s/T))
                                                + beta D(h_s, detach(h_S))]
    with t_s = detach(z_S) for BYOT and the generator's u_s for MetaDistiller. CE_s is the
    cross-entropy against (1 - s) onehot + s/K, KL the batch mean. The BYOT reference options
    (method.kd_temperature_squared, method.deepest_ce, method.hint_reduction): t = T^2 or 1
    (case suffix _kdT1), w = 1 or 1 - a (_deep1ma; the baseline keeps 1), D = the mean of the
    squared differences or their sum (_hintsum). Stored per case: the total and its gradient
    with respect to every head's logits and features (and each u_s).
    Case "byot_public": the BYOT loss as the public BYOT code writes it (luanyunteng/
    pytorch-be-your-own-teacher, train.py: (1 - a) on every CE including the deepest, the KD as
    a soft-target cross-entropy times T^2, the hint as the masked sum of squares), written out
    here from its formulas; its gradients equal student_loss's with T^2, one_minus_alpha and sum,
    and its value exceeds it by a T^2 sum_s H(softmax(z_S/T)) (stored as .entropy_offset).

meta_gradient.bin — a tiny student (conv 3x3 -> batch norm with batch statistics -> relu;
    conv 3x3 stride 2 -> relu; one linear head on the global average of each stage) and a
    tiny generator (u_0 = fc(relu(lat_0(f_0) + lat_1(f_1))) on the detached pooled stage
    features f_s). The meta objective is
        F(phi) = L_meta(theta'(phi)),  theta'(phi) = theta - eta grad_theta L(theta; phi),
        L_meta(theta') = sum_s CE(z_s(theta'; x_m), y_m),
    and its exact gradient dF/dphi is taken by second-order autograd through the virtual step
    (create_graph=True). The C++ test computes the finite-difference estimate of DESIGN.md 1
    with the learner's routine on the same student and generator and compares.

meta_gradient_pyramid_stage.bin, meta_gradient_pyramid_deepest.bin — the same problem with the
    real label generator (models::LabelGenerator, two stages: laterals, top-down nearest sum,
    3x3 smoothing, mean, linear) on the detached stage MAPS, at each stage's resolution and on
    the deepest stage's grid (stage 0 average-pooled by 2 first).

Run with Debian's PyTorch:  /usr/bin/python3 tests/reference/make_meta_fixture.py
"""

import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import Fixture  # noqa: E402  (the MDFX writer)

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures")


def cross_entropy(logits, labels, smoothing):
    return F.cross_entropy(logits, labels, label_smoothing=smoothing)


def distillation(student, teacher, temperature):
    """T^2 * batch mean of KL(softmax(teacher/T) || softmax(student/T))."""
    return F.kl_div(F.log_softmax(student / temperature, 1), F.softmax(teacher / temperature, 1),
                    reduction="batchmean") * temperature * temperature


def student_loss(method, logits, features, labels, targets, alpha, temperature, hint, smoothing,
                 kd_temperature_squared=True, deepest_ce="one", hint_reduction="mean"):
    if method == "baseline":
        return cross_entropy(logits[-1], labels, smoothing)
    deepest_weight = 1 - alpha if deepest_ce == "one_minus_alpha" else 1.0
    total = deepest_weight * cross_entropy(logits[-1], labels, smoothing)
    deepest_features = features[-1].detach()
    for s in range(len(logits) - 1):
        teacher = logits[-1].detach() if method == "byot" else targets[s]
        kd = distillation(logits[s], teacher, temperature)
        if not kd_temperature_squared:
            kd = kd / (temperature * temperature)
        total = total + (1 - alpha) * cross_entropy(logits[s], labels, smoothing)
        total = total + alpha * kd
        if hint > 0:
            squares = (features[s] - deepest_features) ** 2
            total = total + hint * (squares.sum() if hint_reduction == "sum" else squares.mean())
    return total


def byot_public_loss(logits, features, labels, alpha, temperature, beta):
    """The public BYOT code's total loss (luanyunteng/pytorch-be-your-own-teacher, train.py),
    from its formulas: (1 - a) (CE(z_S) + sum_s CE(z_s)) + a sum_s T^2 KD_s + beta sum_s F_s with
    KD_s = -mean_n sum_k softmax(z_S/T)_k log_softmax(z_s/T)_k (the teacher detached) and
    F_s = sum over all elements of (h_s - h_S)^2 where h_s > 0 or h_S > 0 (h_S detached)."""
    teacher = F.softmax(logits[-1].detach() / temperature, 1)
    deepest_features = features[-1].detach()
    ce = F.cross_entropy(logits[-1], labels)
    kd = 0
    hint = 0
    for s in range(len(logits) - 1):
        ce = ce + F.cross_entropy(logits[s], labels)
        kd = kd - (F.log_softmax(logits[s] / temperature, 1) * teacher).sum(1).mean() * temperature ** 2
        mask = ((features[s] > 0) | (deepest_features > 0)).to(features[s].dtype)
        hint = hint + (((features[s] - deepest_features) ** 2) * mask).abs().sum()
    return (1 - alpha) * ce + alpha * kd + beta * hint


def losses_fixture():
    generator = torch.Generator().manual_seed(20240611)
    heads, batch, classes, width = 3, 6, 5, 8
    alpha, temperature = 0.3, 4.0
    fixture = Fixture()
    logits = [torch.randn(batch, classes, generator=generator, dtype=torch.float64) * 2 for _ in range(heads)]
    features = [torch.randn(batch, width, generator=generator, dtype=torch.float64) for _ in range(heads)]
    targets = [torch.randn(batch, classes, generator=generator, dtype=torch.float64) * 2
               for _ in range(heads - 1)]
    labels = torch.randint(0, classes, (batch,), generator=generator).to(torch.int32)
    for s in range(heads):
        fixture.add("logits%d" % s, logits[s])
        fixture.add("features%d" % s, features[s])
    for s in range(heads - 1):
        fixture.add("target%d" % s, targets[s])
    fixture.add("labels", labels)
    fixture.scalar("alpha", alpha)
    fixture.scalar("temperature", temperature)
    cases = [("baseline", 0.0, 0.5), ("baseline", 0.1, 0.5), ("byot", 0.0, 0.5), ("byot", 0.1, 0.5),
             ("byot", 0.1, 0.0), ("metadistiller", 0.0, 0.5), ("metadistiller", 0.1, 0.5),
             ("metadistiller", 0.1, 0.0)]
    # The BYOT reference options, one at a time and together: (kd_temperature_squared,
    # deepest_ce, hint_reduction).
    options = [(False, "one", "mean"), (True, "one_minus_alpha", "mean"), (True, "one", "sum"),
               (True, "one_minus_alpha", "sum"), (False, "one_minus_alpha", "sum")]
    cases = [(method, smoothing, hint, True, "one", "mean") for method, smoothing, hint in cases]
    for method in ["byot", "metadistiller"]:
        cases += [(method, 0.1, 0.5) + option for option in options]
    cases += [("byot", 0.1, 0.0, False, "one_minus_alpha", "sum"),
              ("baseline", 0.1, 0.5, False, "one_minus_alpha", "sum")]
    for method, smoothing, hint, kd_t2, deepest_ce, hint_reduction in cases:
        name = "%s_ls%g_hint%g" % (method, smoothing, hint)
        name += ("" if kd_t2 else "_kdT1") + ("_deep1ma" if deepest_ce == "one_minus_alpha" else "")
        name += "_hintsum" if hint_reduction == "sum" else ""
        z = [t.clone().requires_grad_() for t in logits]
        h = [t.clone().requires_grad_() for t in features]
        u = [t.clone().requires_grad_() for t in targets]
        total = student_loss(method, z, h, labels.long(), u, alpha, temperature, hint, smoothing,
                             kd_t2, deepest_ce, hint_reduction)
        wrt = z + h + (u if method == "metadistiller" else [])
        grads = torch.autograd.grad(total, wrt, allow_unused=True)
        fixture.scalar(name + ".loss", total.item())
        fixture.scalar(name + ".label_smoothing", smoothing)
        fixture.scalar(name + ".hint", hint)
        for s in range(heads):
            zero = torch.zeros_like(logits[s])
            fixture.add("%s.grad_logits%d" % (name, s), grads[s] if grads[s] is not None else zero)
            grad_h = grads[heads + s]
            fixture.add("%s.grad_features%d" % (name, s),
                        grad_h if grad_h is not None else torch.zeros_like(features[s]))
        if method == "metadistiller":
            for s in range(heads - 1):
                fixture.add("%s.grad_target%d" % (name, s), grads[2 * heads + s])

    # The public BYOT code's loss, on the same heads with non-negative (post-ReLU, pooled)
    # features, as BYOT's are: its mask is then no restriction.
    beta = 0.5
    z = [t.clone().requires_grad_() for t in logits]
    h = [t.abs().clone().requires_grad_() for t in features]
    total = byot_public_loss(z, h, labels.long(), alpha, temperature, beta)
    grads = torch.autograd.grad(total, z + h, allow_unused=True)
    offset = entropy_offset(logits, alpha, temperature)
    fixture.scalar("byot_public.loss", total.item())
    fixture.scalar("byot_public.hint", beta)
    fixture.scalar("byot_public.entropy_offset", offset)
    for s in range(heads):
        fixture.add("byot_public.features%d" % s, h[s].detach())
        fixture.add("byot_public.grad_logits%d" % s, grads[s])
        fixture.add("byot_public.grad_features%d" % s,
                    grads[heads + s] if grads[heads + s] is not None else torch.zeros_like(h[s]))
    # The same gradients from student_loss with the reference options (a check of this script).
    ours = student_loss("byot", z, h, labels.long(), None, alpha, temperature, beta, 0.0,
                        True, "one_minus_alpha", "sum")
    ours_grads = torch.autograd.grad(ours, z + h, allow_unused=True)
    for public, mine in zip(grads, ours_grads):
        if public is not None and mine is not None:
            assert torch.allclose(public, mine, rtol=1e-12, atol=1e-12)
    assert abs(total.item() - ours.item() - offset) < 1e-9
    return fixture


def entropy_offset(logits, alpha, temperature):
    """a T^2 sum_s H(softmax(z_S/T)): the soft-target cross-entropy minus the KL, over the
    shallow heads (the teacher's entropy, a constant of the student)."""
    teacher = F.softmax(logits[-1] / temperature, 1)
    entropy = -(teacher * F.log_softmax(logits[-1] / temperature, 1)).sum(1).mean()
    return (alpha * temperature ** 2 * (len(logits) - 1) * entropy).item()


# ---------------------------------------------------------------- the meta-gradient fixture

STUDENT_NAMES = ["conv1.weight", "bn1.weight", "bn1.bias", "conv2.weight",
                 "head0.weight", "head0.bias", "head1.weight", "head1.bias"]
GENERATOR_NAMES = ["gen.lat0.weight", "gen.lat0.bias", "gen.lat1.weight", "gen.lat1.bias",
                   "gen.fc.weight", "gen.fc.bias"]


def tiny_student(theta, images):
    """Head logits and pooled stage features; batch norm with batch statistics (training mode)."""
    logits, pooled, _ = tiny_student_stages(theta, images)
    return logits, pooled


def tiny_student_stages(theta, images):
    """Head logits, pooled stage features and the stage feature maps (N, C_s, H_s, W_s)."""
    p = dict(zip(STUDENT_NAMES, theta))
    stage0 = F.relu(F.batch_norm(F.conv2d(images, p["conv1.weight"], padding=1), None, None,
                                 p["bn1.weight"], p["bn1.bias"], training=True, eps=1e-5))
    stage1 = F.relu(F.conv2d(stage0, p["conv2.weight"], stride=2, padding=1))
    pooled = [stage0.mean((2, 3)), stage1.mean((2, 3))]
    logits = [F.linear(pooled[0], p["head0.weight"], p["head0.bias"]),
              F.linear(pooled[1], p["head1.weight"], p["head1.bias"])]
    return logits, pooled, [stage0, stage1]


def tiny_generator(phi, pooled):
    p = dict(zip(GENERATOR_NAMES, phi))
    fused = F.relu(F.linear(pooled[0], p["gen.lat0.weight"], p["gen.lat0.bias"]) +
                   F.linear(pooled[1], p["gen.lat1.weight"], p["gen.lat1.bias"]))
    return [F.linear(fused, p["gen.fc.weight"], p["gen.fc.bias"])]


def pyramid_names(stages):
    """models::LabelGenerator's parameter names for `stages` stages."""
    names = []
    for s in range(stages):
        names += ["gen.lateral.%d.weight" % s, "gen.lateral.%d.bias" % s]
    for s in range(stages - 1):
        names += ["gen.smooth.%d.weight" % s, "gen.smooth.%d.bias" % s, "gen.fc.%d.weight" % s,
                  "gen.fc.%d.bias" % s]
    return names


def pyramid_generator(phi, stage_maps, resolution):
    """models::LabelGenerator (DESIGN.md 1): the top-down pyramid over the stage maps.
    resolution "stage": P_S = lat_S(F_S), P_s = lat_s(F_s) + nearest(P_{s+1}) at F_s's size;
    "deepest": each F_s is first average-pooled by H_s / H_S (the deepest stage's grid);
    u_s = fc_s(mean_hw(relu(smooth_s(P_s)))), smooth_s a 3x3 conv with padding 1."""
    stages = len(stage_maps)
    p = dict(zip(pyramid_names(stages), phi))
    deepest = stage_maps[-1].shape[2:]

    def level_input(s):
        f = stage_maps[s]
        kernel = min(f.shape[2] // deepest[0], f.shape[3] // deepest[1])
        return F.avg_pool2d(f, kernel) if resolution == "deepest" and kernel > 1 else f

    def lateral(s):
        return F.conv2d(level_input(s), p["gen.lateral.%d.weight" % s], p["gen.lateral.%d.bias" % s])

    levels = [None] * stages
    levels[-1] = lateral(stages - 1)
    for s in reversed(range(stages - 1)):
        own = lateral(s)
        upper = levels[s + 1]
        if upper.shape[2:] != own.shape[2:]:
            upper = F.interpolate(upper, size=own.shape[2:], mode="nearest")
        levels[s] = own + upper
    return [F.linear(F.relu(F.conv2d(levels[s], p["gen.smooth.%d.weight" % s], p["gen.smooth.%d.bias" % s],
                                     padding=1)).mean((2, 3)),
                     p["gen.fc.%d.weight" % s], p["gen.fc.%d.bias" % s])
            for s in range(stages - 1)]


def meta_fixture(kind="tiny"):
    """kind "tiny": the tiny generator on pooled features; "stage" / "deepest": the label
    generator's pyramid on the stage maps, at that resolution."""
    generator = torch.Generator().manual_seed(7)
    batch, channels, size, classes, width = 8, 2, 6, 5, 7
    alpha, temperature, eta, epsilon0 = 0.5, 3.0, 0.1, 1e-3

    def randn(*shape, scale=1.0):
        return torch.randn(*shape, generator=generator, dtype=torch.float64) * scale

    images, meta_images = randn(batch, channels, size, size), randn(batch, channels, size, size)
    labels = torch.randint(0, classes, (batch,), generator=generator)
    meta_labels = torch.randint(0, classes, (batch,), generator=generator)
    theta = [randn(4, channels, 3, 3, scale=0.4), 1 + randn(4, scale=0.1), randn(4, scale=0.1),
             randn(6, 4, 3, 3, scale=0.3), randn(classes, 4, scale=0.5), randn(classes, scale=0.1),
             randn(classes, 6, scale=0.5), randn(classes, scale=0.1)]
    if kind == "tiny":
        names = GENERATOR_NAMES
        phi = [randn(width, 4, scale=0.5), randn(width, scale=0.2), randn(width, 6, scale=0.5),
               randn(width, scale=0.2), randn(classes, width, scale=0.5), randn(classes, scale=0.1)]

        def generate(phi_values, pooled, stage_maps):
            return tiny_generator(phi_values, pooled)
    else:
        names = pyramid_names(2)
        phi = [randn(width, 4, 1, 1, scale=0.5), randn(width, scale=0.2), randn(width, 6, 1, 1, scale=0.5),
               randn(width, scale=0.2), randn(width, width, 3, 3, scale=0.3), randn(width, scale=0.1),
               randn(classes, width, scale=0.5), randn(classes, scale=0.1)]

        def generate(phi_values, pooled, stage_maps):
            return pyramid_generator(phi_values, stage_maps, kind)
    theta = [t.requires_grad_() for t in theta]
    phi = [t.requires_grad_() for t in phi]

    def loss_at(theta_values, x, targets):
        logits, pooled = tiny_student(theta_values, x)
        return student_loss("metadistiller", logits, pooled, labels, targets, alpha, temperature,
                            0.0, 0.0)

    # Exact: differentiate F through the virtual step.
    _, pooled, stage_maps = tiny_student_stages(theta, images)
    detached_pooled = [f.detach() for f in pooled]
    detached_maps = [f.detach() for f in stage_maps]
    targets = generate(phi, detached_pooled, detached_maps)
    loss = loss_at(theta, images, targets)
    grad_theta = torch.autograd.grad(loss, theta, create_graph=True)
    virtual = [t - eta * g for t, g in zip(theta, grad_theta)]
    meta_logits, _ = tiny_student(virtual, meta_images)
    meta_loss = sum(F.cross_entropy(z, meta_labels) for z in meta_logits)
    exact = torch.autograd.grad(meta_loss, phi)

    # The same first-order central-difference estimate the C++ routine computes, for the record.
    virtual_leaf = [v.detach().requires_grad_() for v in virtual]
    meta_logits, _ = tiny_student(virtual_leaf, meta_images)
    direction = torch.autograd.grad(sum(F.cross_entropy(z, meta_labels) for z in meta_logits), virtual_leaf)
    norm = torch.sqrt(sum((d ** 2).sum() for d in direction))
    epsilon = epsilon0 / norm
    with torch.no_grad():
        plus = tiny_student([t + epsilon * d for t, d in zip(theta, direction)], images)[0]
        minus = tiny_student([t - epsilon * d for t, d in zip(theta, direction)], images)[0]
    fd_targets = generate(phi, detached_pooled, detached_maps)
    kd = lambda z: alpha * distillation(z[0], fd_targets[0], temperature)  # noqa: E731
    grad_plus = torch.autograd.grad(kd(plus), phi, retain_graph=True)
    grad_minus = torch.autograd.grad(kd(minus), phi, retain_graph=True)
    estimate = [-eta * (a - b) / (2 * epsilon) for a, b in zip(grad_plus, grad_minus)]
    flat = lambda ts: torch.cat([t.reshape(-1) for t in ts])  # noqa: E731
    fd_error = float((flat(estimate) - flat(exact)).norm() / flat(exact).norm())
    print("meta_gradient (%s generator): |exact| %.3e, PyTorch finite-difference rel. error %.2e" %
          (kind, float(flat(exact).norm()), fd_error))

    fixture = Fixture()
    fixture.add("images", images)
    fixture.add("labels", labels.to(torch.int32))
    fixture.add("meta_images", meta_images)
    fixture.add("meta_labels", meta_labels.to(torch.int32))
    for name, value in zip(STUDENT_NAMES, theta):
        fixture.add("theta." + name, value)
    for name, value in zip(names, phi):
        fixture.add("phi." + name, value)
        fixture.add("meta_gradient." + name, exact[names.index(name)])
    for name, value in zip(STUDENT_NAMES, grad_theta):
        fixture.add("grad_theta." + name, value)
    fixture.scalar("student_loss", loss.item())
    fixture.scalar("meta_loss", meta_loss.item())
    fixture.scalar("alpha", alpha)
    fixture.scalar("temperature", temperature)
    fixture.scalar("learning_rate", eta)
    fixture.scalar("epsilon", epsilon0)
    fixture.scalar("v_norm", float(norm))
    fixture.scalar("torch_fd_relative_error", fd_error)
    return fixture


def main():
    os.makedirs(FIXTURES, exist_ok=True)
    for name, make in [("losses", losses_fixture), ("meta_gradient", meta_fixture),
                       ("meta_gradient_pyramid_stage", lambda: meta_fixture("stage")),
                       ("meta_gradient_pyramid_deepest", lambda: meta_fixture("deepest"))]:
        size = make().write(os.path.join(FIXTURES, name + ".bin"))
        print("wrote %s.bin (%d bytes)" % (name, size))


if __name__ == "__main__":
    main()
