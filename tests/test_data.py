"""Tests of the data package against independent computations on small fixtures written here."""

import hashlib
import pickle
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from darts_nas.data import (DeviceLoader, ImageDataset, augment, is_image_folder, load_cifar, load_dataset,
                            load_image_folder, load_sample, normalize, search_split, synthetic_dataset)
from darts_nas.data import cifar
from darts_nas.data.dataset import CIFAR10_MEAN, CIFAR10_STD, CIFAR100_MEAN
from darts_nas.errors import DartsNasError

TRAIN_N, TEST_N = 50, 10  # the fakes are 1000x smaller than CIFAR; EXPECTED_COUNTS is patched to match
CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def md5(path):
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture(autouse=True)
def small_counts(monkeypatch):
    monkeypatch.setattr(cifar, "EXPECTED_COUNTS", {"train": TRAIN_N, "test": TEST_N})


def _dump(path, obj):
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def make_cifar10(parent, seed=0):
    """Write parent/cifar-10-batches-py; return the (images [N,3,32,32], labels) that the files hold, per split."""
    rng = np.random.default_rng(seed)
    d = parent / "cifar-10-batches-py"
    d.mkdir(parents=True)
    train_x = rng.integers(0, 256, (TRAIN_N, 3072), dtype=np.uint8)
    train_y = rng.integers(0, 10, TRAIN_N)
    test_x = rng.integers(0, 256, (TEST_N, 3072), dtype=np.uint8)
    test_y = rng.integers(0, 10, TEST_N)
    per = TRAIN_N // 5
    for i in range(5):
        rows = slice(i * per, (i + 1) * per)
        _dump(d / f"data_batch_{i + 1}", {b"batch_label": b"fake", b"data": train_x[rows],
                                          b"labels": train_y[rows].tolist()})
    _dump(d / "test_batch", {b"data": test_x, b"labels": test_y.tolist()})
    _dump(d / "batches.meta", {b"label_names": [n.encode() for n in CIFAR10_NAMES], b"num_vis": 3072})
    return {"train": (train_x.reshape(-1, 3, 32, 32), train_y), "test": (test_x.reshape(-1, 3, 32, 32), test_y)}


def make_tarball(batches_dir, tar_path):
    with tarfile.open(tar_path, "w:gz") as tf:
        tf.add(batches_dir, arcname=batches_dir.name)
    return tar_path


def assert_matches(ds, expected):
    images, labels = expected
    assert ds.images.dtype == torch.uint8 and ds.images.is_contiguous()
    assert ds.labels.dtype == torch.int64
    np.testing.assert_array_equal(ds.images.numpy(), images)
    np.testing.assert_array_equal(ds.labels.numpy(), labels)


# -- CIFAR --------------------------------------------------------------------------------------------------------
def test_cifar10_every_root_form_gives_the_written_arrays(tmp_path):
    expected = make_cifar10(tmp_path / "a")
    batches = tmp_path / "a" / "cifar-10-batches-py"
    (tmp_path / "b").mkdir()
    tar = make_tarball(batches, tmp_path / "b" / "cifar-10-python.tar.gz")
    for root in (batches, tmp_path / "a", tar, tmp_path / "b"):
        for split in ("train", "test"):
            ds = load_cifar(root, train=split == "train", download=False)
            assert_matches(ds, expected[split])
            assert ds.classes == CIFAR10_NAMES
            assert ds.mean == CIFAR10_MEAN and ds.std == CIFAR10_STD and ds.name == "cifar10"


def test_cifar100_dir_and_tarball(tmp_path):
    rng = np.random.default_rng(1)
    d = tmp_path / "cifar-100-python"
    d.mkdir()
    x = {s: rng.integers(0, 256, (n, 3072), dtype=np.uint8) for s, n in (("train", TRAIN_N), ("test", TEST_N))}
    y = {s: rng.integers(0, 100, len(x[s])) for s in x}
    for s in x:
        _dump(d / s, {b"data": x[s], b"fine_labels": y[s].tolist(), b"coarse_labels": (y[s] // 5).tolist()})
    names = [f"c{i:03d}" for i in range(100)]
    _dump(d / "meta", {b"fine_label_names": [n.encode() for n in names], b"coarse_label_names": []})
    tar = make_tarball(d, tmp_path / "cifar-100-python.tar.gz")
    for root in (tmp_path, d, tar):
        for s in x:
            ds = load_cifar(root, name="cifar100", train=s == "train", download=False)
            assert_matches(ds, (x[s].reshape(-1, 3, 32, 32), y[s]))
            assert ds.classes == names and ds.mean == CIFAR100_MEAN and ds.name == "cifar100"


def test_md5_notes(tmp_path, monkeypatch):
    make_cifar10(tmp_path)
    batches = tmp_path / "cifar-10-batches-py"
    notes = load_cifar(tmp_path, download=False).notes
    assert len(notes) == 1 and "differ from the official release" in notes[0] and "data_batch_1" in notes[0]
    # With the "official" checksums set to those of our files there is nothing to report.
    for name in cifar.SPECS["cifar10"].md5:
        monkeypatch.setitem(cifar.SPECS["cifar10"].md5, name, md5(batches / name))
    assert load_cifar(tmp_path, download=False).notes == []
    assert load_cifar(tmp_path, train=False, download=False).notes == []
    monkeypatch.setitem(cifar.SPECS["cifar10"].md5, "data_batch_4", "0" * 32)
    notes = load_cifar(tmp_path, download=False).notes
    assert len(notes) == 1 and "data_batch_4" in notes[0] and "data_batch_1" not in notes[0]


def test_truncated_batch_names_the_file(tmp_path):
    make_cifar10(tmp_path)
    path = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(DartsNasError, match="data_batch_3"):
        load_cifar(tmp_path, download=False)
    # The test split does not read the broken file.
    assert len(load_cifar(tmp_path, train=False, download=False)) == TEST_N


@pytest.mark.parametrize("batch, match", [
    ({b"data": np.zeros((TEST_N, 3000), np.uint8), b"labels": [0] * TEST_N}, "3072"),
    ({b"data": np.zeros((TEST_N - 1, 3072), np.uint8), b"labels": [0] * (TEST_N - 1)}, "expected 10"),
    ({b"data": np.zeros((TEST_N, 3072), np.float32), b"labels": [0] * TEST_N}, "uint8"),
    ({b"data": np.zeros((TEST_N, 3072), np.uint8), b"labels": [0] * (TEST_N - 1)}, "labels"),
    ({b"data": np.zeros((TEST_N, 3072), np.uint8), b"labels": [10] * TEST_N}, "0..9"),
    ({b"pixels": np.zeros((TEST_N, 3072), np.uint8)}, "keys"),
])
def test_malformed_batch_is_rejected(tmp_path, batch, match):
    make_cifar10(tmp_path)
    _dump(tmp_path / "cifar-10-batches-py" / "test_batch", batch)
    with pytest.raises(DartsNasError, match=match) as info:
        load_cifar(tmp_path, train=False, download=False)
    assert "test_batch" in str(info.value)


def test_pickle_with_foreign_globals_is_refused(tmp_path):
    make_cifar10(tmp_path)
    _dump(tmp_path / "cifar-10-batches-py" / "test_batch", {b"data": hashlib.md5, b"labels": []})
    with pytest.raises(DartsNasError, match="test_batch.*not a readable CIFAR pickle"):
        load_cifar(tmp_path, train=False, download=False)


def test_wrong_tarball_names_it(tmp_path):
    tar = tmp_path / "cifar-10-python.tar.gz"
    tar.write_bytes(b"not a tarball at all")
    with pytest.raises(DartsNasError, match="cifar-10-python.tar.gz"):
        load_cifar(tmp_path, download=False)


def test_incomplete_directory_names_the_missing_file(tmp_path):
    make_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_2").unlink()
    with pytest.raises(DartsNasError, match="incomplete: missing data_batch_2"):
        load_cifar(tmp_path, download=True, url="file:///nonexistent")


def test_missing_without_download_names_the_path(tmp_path):
    with pytest.raises(DartsNasError) as info:
        load_cifar(tmp_path / "nowhere", download=False)
    msg = str(info.value)
    assert str(tmp_path / "nowhere") in msg and "cifar-10-batches-py" in msg and "cifar-10-python.tar.gz" in msg
    assert "download is off" in msg
    assert not (tmp_path / "nowhere").exists()


def test_failed_download_is_reported(tmp_path):
    url = (tmp_path / "missing.tar.gz").as_uri()
    with pytest.raises(DartsNasError, match="download failed"):
        load_cifar(tmp_path / "root", download=True, url=url)
    assert list((tmp_path / "root").iterdir()) == []


def test_download_from_file_url(tmp_path):
    expected = make_cifar10(tmp_path / "server")
    tar = make_tarball(tmp_path / "server" / "cifar-10-batches-py", tmp_path / "server" / "upload.tar.gz")
    root = tmp_path / "data" / "nested"
    ds = load_cifar(root, download=True, url=tar.as_uri(), md5=md5(tar))
    assert_matches(ds, expected["train"])
    assert sorted(p.name for p in root.iterdir()) == ["cifar-10-python.tar.gz"]
    assert md5(root / "cifar-10-python.tar.gz") == md5(tar)
    assert sum("differ from the official" in n for n in ds.notes) == 1
    # Second load reads the downloaded tarball; a bogus URL proves nothing is fetched again.
    assert_matches(load_cifar(root, train=False, url="file:///nonexistent"), expected["test"])


def test_download_with_wrong_md5_leaves_nothing(tmp_path):
    make_cifar10(tmp_path / "server")
    tar = make_tarball(tmp_path / "server" / "cifar-10-batches-py", tmp_path / "server" / "upload.tar.gz")
    root = tmp_path / "data"
    with pytest.raises(DartsNasError, match="md5"):
        load_cifar(root, download=True, url=tar.as_uri(), md5="0" * 32)
    assert list(root.iterdir()) == []


# -- image folder -------------------------------------------------------------------------------------------------
def _write_image(path, array):
    Image.fromarray(array).save(path)


def test_image_folder(tmp_path):
    rng = np.random.default_rng(2)
    written = {}
    for cls, names in {"dog": ["b.png", "a.PNG"], "cat": ["z.png"], "emu": ["x.bmp", "y.png", "w.png"]}.items():
        (tmp_path / cls).mkdir()
        for name in names:
            written[cls, name] = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
            _write_image(tmp_path / cls / name, written[cls, name])
    (tmp_path / "dog" / "readme.txt").write_text("not an image")
    (tmp_path / ".hidden").mkdir()
    ds = load_image_folder(tmp_path)
    assert ds.classes == ["cat", "dog", "emu"]
    order = [("cat", "z.png"), ("dog", "a.PNG"), ("dog", "b.png"), ("emu", "w.png"), ("emu", "x.bmp"),
             ("emu", "y.png")]
    assert ds.labels.tolist() == [0, 1, 1, 2, 2, 2]
    expected = np.stack([written[k].transpose(2, 0, 1) for k in order])
    np.testing.assert_array_equal(ds.images.numpy(), expected)
    pixels = expected.astype(np.float64) / 255
    np.testing.assert_allclose(ds.mean, pixels.mean(axis=(0, 2, 3)), rtol=1e-9)
    np.testing.assert_allclose(ds.std, pixels.std(axis=(0, 2, 3)), rtol=1e-7)
    assert is_image_folder(tmp_path)


def test_image_folder_resizes_and_converts(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    Image.new("L", (40, 20), 200).save(tmp_path / "a" / "grey.jpg")
    Image.new("RGBA", (7, 9), (10, 20, 30, 255)).save(tmp_path / "b" / "rgba.png")
    ds = load_image_folder(tmp_path, image_size=16)
    assert ds.images.shape == (2, 3, 16, 16)
    assert (ds.images[1] == torch.tensor([10, 20, 30], dtype=torch.uint8).view(3, 1, 1)).all()
    assert (ds.images[0].int() - 200).abs().max() <= 2  # a flat JPEG stays (nearly) flat


def test_image_folder_errors(tmp_path):
    with pytest.raises(DartsNasError, match="does not exist"):
        load_image_folder(tmp_path / "missing")
    with pytest.raises(DartsNasError, match="no class folders"):
        load_image_folder(tmp_path)
    (tmp_path / "full").mkdir()
    _write_image(tmp_path / "full" / "1.png", np.zeros((32, 32, 3), np.uint8))
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("x")
    with pytest.raises(DartsNasError, match="empty has no images"):
        load_image_folder(tmp_path)
    (tmp_path / "empty" / "bad.png").write_bytes(b"this is no png")
    with pytest.raises(DartsNasError, match="cannot read image .*bad.png"):
        load_image_folder(tmp_path)


def test_is_image_folder(tmp_path):
    assert not is_image_folder(tmp_path / "missing")
    assert not is_image_folder(tmp_path)
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "a.txt").write_text("x")
    assert not is_image_folder(tmp_path)
    _write_image(tmp_path / "c" / "a.jpeg", np.zeros((4, 4, 3), np.uint8))
    assert is_image_folder(tmp_path)


# -- synthetic and sample -----------------------------------------------------------------------------------------
def test_synthetic_is_deterministic_balanced_and_learnable():
    a, b = synthetic_dataset(n=500, seed=3), synthetic_dataset(n=500, seed=3)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.images, synthetic_dataset(n=500, seed=4).images)
    assert a.images.shape == (500, 3, 32, 32) and a.name == "synthetic" and len(a.classes) == 10
    counts = torch.bincount(a.labels, minlength=10)
    assert counts.max() - counts.min() <= 1
    x = a.images.double() / 255
    np.testing.assert_allclose(a.mean, x.mean((0, 2, 3)).numpy(), rtol=1e-9)
    np.testing.assert_allclose(a.std, x.std((0, 2, 3), unbiased=False).numpy(), rtol=1e-6)
    # Learnable: class centroids of the train split classify a fresh test split far above chance (10%).
    test = synthetic_dataset(n=500, seed=3, train=False)
    assert not torch.equal(test.images, a.images)
    centroids = torch.stack([x[a.labels == k].mean(0).flatten() for k in range(10)])
    pred = torch.cdist(test.images.double().flatten(1) / 255, centroids).argmin(1)
    assert (pred == test.labels).double().mean() > 0.9


def test_synthetic_shapes_and_errors():
    ds = synthetic_dataset(n=7, num_classes=3, image_size=8, channels=1, seed=0)
    assert ds.images.shape == (7, 1, 8, 8) and len(ds.mean) == 1 and ds.labels.max() < 3
    with pytest.raises(DartsNasError, match="num_classes"):
        synthetic_dataset(num_classes=0)


def test_sample():
    ds = load_sample()
    assert ds.images.shape == (1000, 3, 32, 32) and ds.images.dtype == torch.uint8
    assert ds.classes == CIFAR10_NAMES and ds.name == "cifar10-sample"
    assert ds.mean == CIFAR10_MEAN and ds.std == CIFAR10_STD
    counts = torch.bincount(ds.labels, minlength=10)
    assert len(counts) == 10 and counts.min() > 70  # the first 1000 test images are roughly balanced
    sub = ds.subset([5, 1, 5])
    assert torch.equal(sub.images[0], ds.images[5]) and sub.labels.tolist() == ds.labels[[5, 1, 5]].tolist()
    assert sub.classes == ds.classes and sub.mean == ds.mean and sub.name == ds.name


def test_load_dataset(tmp_path, monkeypatch):
    with pytest.raises(DartsNasError, match="cifar10, cifar100, folder, synthetic, sample"):
        load_dataset("imagenet")
    with pytest.raises(DartsNasError, match="root"):
        load_dataset("folder")
    assert len(load_dataset("synthetic", root="/ignored", synthetic_size=40, num_classes=4, image_size=8)) == 40
    assert load_dataset("sample", root="/ignored").name == "cifar10-sample"
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DartsNasError, match="data"):
        load_dataset("cifar10", download=False)
    expected = make_cifar10(tmp_path / "data")
    assert_matches(load_dataset("cifar10", download=False), expected["train"])


# -- augmentation -------------------------------------------------------------------------------------------------
MEAN, STD = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)


def manual_normalize(x):
    x = x.astype(np.float64) / 255
    return (x - np.array(MEAN).reshape(1, 3, 1, 1)) / np.array(STD).reshape(1, 3, 1, 1)


def test_normalize_matches_manual_math():
    x = torch.randint(0, 256, (4, 3, 5, 6), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    np.testing.assert_allclose(normalize(x, MEAN, STD, dtype=torch.float64).numpy(), manual_normalize(x.numpy()),
                               rtol=1e-12, atol=1e-12)
    out = normalize(x, MEAN, STD)
    assert out.dtype == torch.float32
    np.testing.assert_allclose(out.numpy(), manual_normalize(x.numpy()), rtol=1e-5, atol=1e-5)


def test_crop_and_flip_are_crops_of_the_padded_image():
    n, p, size = 64, 2, 6
    g = torch.Generator().manual_seed(0)
    x = torch.randint(1, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)  # non-zero: padding shows
    out = augment(x, MEAN, STD, torch.Generator().manual_seed(1), crop_padding=p, flip=True, dtype=torch.float64)
    padded = np.pad(x.numpy(), ((0, 0), (0, 0), (p, p), (p, p)))
    seen = set()
    for i in range(n):
        matches = [(dy, dx, f) for dy in range(2 * p + 1) for dx in range(2 * p + 1) for f in (False, True)
                   if np.allclose(out[i].numpy(), manual_normalize(
                       (padded[i, :, dy:dy + size, dx:dx + size][..., ::-1] if f
                        else padded[i, :, dy:dy + size, dx:dx + size])[None])[0], atol=1e-12)]
        assert matches, f"image {i} is no crop of its padded input"
        seen.update(matches)
    assert {f for _, _, f in seen} == {False, True}
    assert {dy for dy, _, _ in seen} == set(range(2 * p + 1)) and {dx for _, dx, _ in seen} == set(range(2 * p + 1))


def test_flip_rate_and_determinism():
    n = 4000
    row = torch.arange(4, dtype=torch.uint8) * 50 + 10
    x = row.expand(n, 3, 4, 4).contiguous()
    out = augment(x, MEAN, STD, torch.Generator().manual_seed(0), crop_padding=0, flip=True, dtype=torch.float64)
    plain = normalize(x[:1], MEAN, STD, dtype=torch.float64)
    flipped = (out == plain.flip(-1)).flatten(1).all(1)
    assert ((out == plain).flatten(1).all(1) | flipped).all()
    assert abs(flipped.double().mean().item() - 0.5) < 0.04
    unflipped = augment(x, MEAN, STD, torch.Generator().manual_seed(0), crop_padding=0, flip=False)
    assert torch.allclose(unflipped, plain.float().expand_as(unflipped))
    again = augment(x, MEAN, STD, torch.Generator().manual_seed(0), crop_padding=0, flip=True, dtype=torch.float64)
    assert torch.equal(out, again)


def _zero_box(img):
    """Rows and columns of the zero region of one [C, H, W] image, checking it is one full rectangle."""
    zero = (img == 0).all(0)
    assert ((img == 0).any(0) == zero).all()  # the hole covers all channels
    rows, cols = zero.any(1).nonzero().flatten(), zero.any(0).nonzero().flatten()
    assert zero.sum() == len(rows) * len(cols)
    if len(rows):
        assert rows.tolist() == list(range(rows[0], rows[-1] + 1)) and cols.tolist() == list(range(cols[0], cols[-1] + 1))
    return rows.tolist(), cols.tolist()


@pytest.mark.parametrize("length", [8, 5])
def test_cutout_zeroes_a_clipped_square_after_normalization(length):
    n, h = 500, 16
    x = torch.full((n, 3, h, h), 255, dtype=torch.uint8)
    out = augment(x, MEAN, STD, torch.Generator().manual_seed(0), crop_padding=0, flip=False, cutout=length,
                  dtype=torch.float64)
    value = (1 - torch.tensor(MEAN, dtype=torch.float64)) / torch.tensor(STD, dtype=torch.float64)
    clipped = 0
    for i in range(n):
        rows, cols = _zero_box(out[i])
        for span in (rows, cols):
            # Some centre c in 0..h-1 gives exactly this span of [c - length//2, c - length//2 + length) ∩ [0, h).
            spans = [list(range(max(c - length // 2, 0), min(c - length // 2 + length, h))) for c in range(h)]
            assert span in spans
            clipped += len(span) < length
        keep = ~(out[i] == 0).all(0)
        assert torch.equal(out[i][:, keep], value.view(3, 1).expand(3, int(keep.sum())))
    assert clipped > 0  # squares near the border do get clipped


def test_cutout_applies_after_normalization_with_crop():
    x = torch.full((200, 3, 8, 8), 255, dtype=torch.uint8)
    out = augment(x, MEAN, STD, torch.Generator().manual_seed(0), crop_padding=4, flip=True, cutout=4,
                  dtype=torch.float64)
    pad_value = -torch.tensor(MEAN, dtype=torch.float64) / torch.tensor(STD, dtype=torch.float64)
    img_value = (1 - torch.tensor(MEAN, dtype=torch.float64)) / torch.tensor(STD, dtype=torch.float64)
    for v in (0.0, pad_value, img_value):  # hole (0), zero padding normalized, image: all three occur
        v = torch.as_tensor(v, dtype=torch.float64).reshape(-1, 1, 1)
        assert (out == v).all(1).any()
    is_known = (out == 0).all(1) | (out == pad_value.view(1, 3, 1, 1)).all(1) | (out == img_value.view(1, 3, 1, 1)).all(1)
    assert is_known.all()


# -- loader -------------------------------------------------------------------------------------------------------
def test_search_split():
    a, b = search_split(103)
    assert a.tolist() == list(range(51)) and b.tolist() == list(range(51, 103))
    a, b = search_split(10, 0.3)
    assert a.tolist() == [0, 1, 2] and b.tolist() == list(range(3, 10))
    with pytest.raises(DartsNasError):
        search_split(10, 1.5)


def indexed_dataset(n=40, size=8):
    """Labels equal example numbers, so batches reveal which examples they hold."""
    images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    return ImageDataset(images, torch.arange(n), [str(i) for i in range(n)], MEAN, STD, "indexed")


def collect(loader, seed):
    return list(loader.epoch(torch.Generator().manual_seed(seed)))


def test_loader_epochs_are_reproducible_and_visit_each_index_once():
    ds = indexed_dataset()
    indices = torch.arange(3, 40, 2)  # 19 examples
    loader = DeviceLoader(ds, indices, batch_size=5, device="cpu", cutout=3)
    assert len(loader) == 19 and loader.steps_per_epoch() == 3
    a, b, c = collect(loader, 7), collect(loader, 7), collect(loader, 8)
    assert len(a) == 3 and all(x.shape == (5, 3, 8, 8) and x.dtype == torch.float32 for x, _ in a)
    assert all(torch.equal(xa, xb) and torch.equal(ya, yb) for (xa, ya), (xb, yb) in zip(a, b))
    assert not all(torch.equal(xa, xc) for (xa, _), (xc, _) in zip(a, c))
    for batches in (a, c):
        seen = torch.cat([y for _, y in batches]).tolist()
        assert len(seen) == len(set(seen)) == 15 and set(seen) <= set(indices.tolist())


def test_loader_without_augmentation_serves_normalized_examples():
    ds = indexed_dataset()
    loader = DeviceLoader(ds, torch.arange(40), batch_size=16, device="cpu", augment=False, dtype=torch.float64)
    for x, y in collect(loader, 0):
        np.testing.assert_allclose(x.numpy(), manual_normalize(ds.images[y].numpy()), atol=1e-12)


def test_eval_batches_cover_everything_in_order():
    ds = indexed_dataset()
    indices = torch.arange(40).flip(0)[:23]
    loader = DeviceLoader(ds, indices, batch_size=10, device="cpu", dtype=torch.float64)
    batches = list(loader.eval_batches())
    assert [len(y) for _, y in batches] == [10, 10, 3]
    assert torch.cat([y for _, y in batches]).tolist() == indices.tolist()
    x = torch.cat([x for x, _ in batches])
    np.testing.assert_allclose(x.numpy(), manual_normalize(ds.images[indices].numpy()), atol=1e-12)
    assert [len(y) for _, y in loader.eval_batches(batch_size=8)] == [8, 8, 7]
