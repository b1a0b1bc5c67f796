import torch


def test_sharp_frame_row_splits_frames_by_their_true_blur(load_benchmark):
    bench = load_benchmark("blur_estimates")
    truth = torch.tensor([0.1, 0.5, 1.5, 3.0, 8.0, 0.9])
    bme = torch.tensor([0.4, 2.5, 1.0, 6.0, 9.0, 0.8])
    # Sharp: frames 0, 1, 5 (readings 0.4, 2.5, 0.8; two under 1 px); blurred: 3, 4.
    assert bench.sharp_frame_row(truth, bme, 1.0) == ["3", "2", "1.2 / 2.5", "6.0 / 6.0"]
    assert bench.sharp_frame_row(truth, bme, 3.0)[1] == "3"
    # A steady pan: no sharp frame at all.
    pan = bench.sharp_frame_row(torch.full((4,), 9.0), torch.full((4,), 7.0), 1.0)
    assert pan == ["0", "0", "- / -", "7.0 / 7.0"]
