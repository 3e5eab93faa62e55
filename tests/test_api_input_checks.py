"""The Python API refuses bad input with a clear ValueError (issue 16, item 9)."""

import numpy as np
import pytest
import torch

from teachdiff.core.diffusion import NoiseSchedule
from teachdiff.inference.restore import restore_image
from teachdiff.core.unet import MPUNet, UNetConfig


def test_restore_image_refuses_an_rgb_array_instead_of_restoring_its_rows_as_slices():
    never_called = torch.nn.Identity()  # the check comes before any network call
    with pytest.raises(ValueError, match=r"RGB\(A\) colour image \(H, W, 3\)"):
        restore_image(never_called, np.zeros((40, 30, 3), dtype=np.uint8), NoiseSchedule(T=2), progress=False)


@pytest.mark.parametrize("kwargs, match", [({"s": -1}, "offset s"), ({"s": float("nan")}, "offset s"),
                                           ({"s": -0.5}, "offset s"), ({"beta_max": 1.0}, "beta_max"),
                                           ({"beta_max": 0.0}, "beta_max")])
def test_noise_schedule_refuses_parameters_that_give_nan_or_negative_betas(kwargs, match):
    with pytest.raises(ValueError, match=match):
        NoiseSchedule(**kwargs)
    assert torch.isfinite(NoiseSchedule(s=0.0).betas).all()  # s = 0 is the unshifted cosine: allowed


@pytest.mark.parametrize("field, value", [("channels", 0), ("channels", -8), ("channel_mult", ()),
                                          ("channel_mult", (1, 0)), ("num_blocks", 0), ("cond_channels", 0),
                                          ("image_size", 0), ("dropout", 1.0), ("res_balance", 2.0),
                                          ("attn_placement", "everywhere"), ("clip_act", 0)])
def test_unet_config_refuses_impossible_values_when_created(field, value):
    with pytest.raises(ValueError, match=field):
        UNetConfig(**{field: value})
    UNetConfig.from_dict(UNetConfig.tiny().to_dict())  # valid configurations still load


def test_mpunet_refuses_float64_input_with_a_cast_hint():
    model = MPUNet(UNetConfig.tiny())
    x = torch.zeros(1, 1, 32, 32, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"float64.*x\.float\(\)"):
        model(x, x, 0.5)
    assert model(x.float(), x.float(), 0.5).shape == (1, 1, 32, 32)
