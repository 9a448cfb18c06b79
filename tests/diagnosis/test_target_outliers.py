import torch

from trainground.diagnosis.target_outliers import (
    Z_THRESHOLD,
    object_label_issues,
    regression_target_issues,
    robust_z,
)


def test_robust_z_of_a_gaussian_is_its_z_and_ignores_nan():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(20000, generator=g) * 3 + 5
    z = robust_z(x)
    torch.testing.assert_close(z.std().float(), torch.tensor(1.0), atol=0.03, rtol=0)
    with_nan = torch.cat([x[:10], torch.tensor([float("nan")])])
    assert torch.isnan(robust_z(with_nan)[-1]) and torch.isfinite(robust_z(with_nan)[:10]).all()


def test_regression_outliers_are_found_and_a_clean_set_stays_almost_silent():
    g = torch.Generator().manual_seed(1)
    pred = torch.rand(1000, generator=g) * 5
    y = pred + 0.3 * torch.randn(1000, generator=g)
    clean = regression_target_issues(y, pred)
    assert clean.is_issue.sum() <= 3  # about 1 in 2000 of a Gaussian passes 3.5
    bad = y.clone()
    bad[:20] += 3.0  # 10 residual spreads
    found = regression_target_issues(bad, pred)
    assert found.is_issue[:20].all() and found.is_issue[20:].sum() <= 3
    assert (found.score[:20] < 0.01).all() and (found.score[20:].median() > 0.8)


def test_object_issues_are_one_sided_and_skip_padding():
    g = torch.Generator().manual_seed(2)
    losses = 0.5 + 0.1 * torch.rand(50, 4, generator=g)
    losses[:, 3] = float("nan")  # padding
    losses[0, 0] = 5.0  # an object the model does not see where the label puts it
    losses[1, 1] = 0.0  # an unusually easy object is not an issue
    out = object_label_issues(losses)
    assert out.is_issue[0, 0] and not out.is_issue[1, 1] and out.is_issue.sum() == 1
    assert not out.is_issue[:, 3].any() and out.z[0, 0] > Z_THRESHOLD


def test_object_class_issues_flag_negative_margins_only():
    from trainground.diagnosis.target_outliers import object_class_issues

    margins = torch.tensor([[0.8, -0.3, float("nan")], [0.0, 0.2, -0.01]])
    out = object_class_issues(margins)
    assert out.is_issue.tolist() == [[False, True, False], [False, False, True]]
    assert out.score[0, 0] > out.score[0, 1]
