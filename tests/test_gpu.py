"""What only a CUDA GPU shows: the VLA, its decoding and its trainer on the device, bf16 autocast, an exact
resume there, and a checkpoint trained there served on the CPU. ``-m gpu``, skipped without CUDA;
``scripts/gpu_check.sh`` runs them (docs/gpu.md). The stack has no CUDA graphs or compiled inference to test."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from toy_vla import make_config, small_model, weights

from vla.data.dataset import VLADataset, collate
from vla.model.config import DECODINGS

# The model stack (transformers, the simulator) is imported inside the tests: on a machine without CUDA
# the GPU check's dry run collects this file, and every test skips, in seconds.
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]
CUDA = torch.device("cuda")


@pytest.fixture
def samples(make_dataset):
    return VLADataset(make_dataset(episodes=2, lengths=[6, 5]), chunk_size=4)


def on_cuda(samples, **changes):
    from vla.model.vla import VLA

    torch.manual_seed(0)
    return VLA(small_model(**changes), samples.stats).to(CUDA)


def observations(samples, count: int) -> list[dict]:
    batch = collate([samples[i] for i in range(count)])
    return [
        {
            "images": {c: batch["images"][c][i].permute(1, 2, 0).numpy() for c in batch["images"]},
            "state": batch["state"][i].numpy(),
            "instruction": batch["instruction"][i],
        }
        for i in range(count)
    ]


def test_the_vla_its_gradients_and_its_actions_live_on_the_gpu(samples):
    vla = on_cuda(samples)
    assert {t.device.type for t in [*vla.parameters(), *vla.buffers()]} == {"cuda"}
    out = vla.loss(collate([samples[i] for i in range(4)]))
    out["loss"].backward()
    grads = [p.grad for p in vla.parameters() if p.grad is not None]
    assert grads and all(g.device.type == "cuda" and torch.isfinite(g).all() for g in grads)
    actions = vla.predict(collate([samples[0]]))
    assert actions.shape == (1, 4, 7) and np.isfinite(actions).all()


def test_training_autocasts_to_bf16_on_cuda(samples):
    from vla.train.loop import autocast, uses_bf16

    vla = on_cuda(samples)
    dtypes = []
    projection = vla.llm.get_decoder().layers[0].mlp.down_proj  # a matrix product of the LLM
    hook = projection.register_forward_hook(lambda module, args, out: dtypes.append(out.dtype))
    assert uses_bf16("auto", CUDA)
    with autocast("auto", CUDA):
        loss = vla.loss(collate([samples[i] for i in range(4)]))["loss"]
    hook.remove()
    assert dtypes == [torch.bfloat16], "the LLM's products run in bf16 under the trainer's autocast"
    assert loss.dtype == torch.float32 and torch.isfinite(loss)


@pytest.mark.parametrize("decoding", DECODINGS)
def test_the_policy_decodes_on_the_gpu_in_bf16(samples, decoding):
    from policies.vla_policy import VLAPolicy

    vla = on_cuda(samples, decoding=decoding).eval()
    vla.llm.to(torch.bfloat16)
    policy = VLAPolicy.from_model(vla)
    assert policy.precision == "bf16"
    low, high = policy.action_range
    for reply in policy.infer_batch(observations(samples, 3)):
        chunk = reply["actions"]
        assert chunk.shape == (4, 7) and ((chunk >= low - 1e-6) & (chunk <= high + 1e-6)).all()


def test_training_on_cuda_resumes_exactly_and_its_checkpoint_serves_on_the_cpu(make_dataset, tmp_path):
    from policies.vla_policy import VLAPolicy
    from vla.train.loop import train

    dataset = make_dataset(episodes=3, lengths=[6, 6, 6])
    options = {"model": {"llm": small_model().llm, "vision": small_model().vision}, "batch_size": 2}
    devices = []

    def device(step, model):
        devices.append(model.device.type)

    straight = train(make_config(dataset, tmp_path / "a", **options), hooks=[device])
    train(make_config(dataset, tmp_path / "b", **options), until=2)
    resumed = train(make_config(dataset, tmp_path / "b", **options))
    assert set(devices) == {"cuda"}
    a, b = weights(straight.checkpoint), weights(resumed.checkpoint)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    policy = VLAPolicy(straight.checkpoint, device="cpu")
    samples = VLADataset(dataset, chunk_size=4)
    assert policy.infer(observations(samples, 1)[0])["actions"].shape == (4, 7)
