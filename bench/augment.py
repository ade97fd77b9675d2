"""Images per second of mentor's batched augmentation against a per-image PIL RandAugment.

    python bench/augment.py [--batch 448] [--repeats 5] [--device cpu|cuda] [--data-path cifar10-jpeg.tar.gz]

Measures, on the same batch of 32x32 RGB images (CIFAR-10 when --data-path is given, random
otherwise): mentor's weak view (flip + translate), strong view (weak + RandAugment 2 ops +
Cutout) on the chosen device, and the baseline most codebases use: a Python loop over PIL
images applying the same ops one image at a time (FixMatch-style RandAugment). Prints a
markdown row per pipeline with the command and machine, for BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import platform
import random
import statistics
import time

import numpy as np
import torch
from PIL import Image, ImageEnhance, ImageOps

from mentor.augment import ImageViews, RandAugment


def pil_randaugment(img: Image.Image, rng: random.Random, num_ops: int = 2) -> Image.Image:
    """The per-image baseline: FixMatch's RandAugment ops on one PIL image, then 16 px Cutout."""
    def enhance(cls):
        return lambda im, m: cls(im).enhance(0.1 + 1.8 * m)

    def affine(kind):
        def apply(im, m):
            v = (2 * m - 1)
            if kind == "rotate":
                return im.rotate(30 * v, fillcolor=(128, 128, 128))
            coeffs = {"shear_x": (1, 0.3 * v, 0, 0, 1, 0), "shear_y": (1, 0, 0, 0.3 * v, 1, 0),
                      "translate_x": (1, 0, 0.3 * v * im.size[0], 0, 1, 0),
                      "translate_y": (1, 0, 0, 0, 1, 0.3 * v * im.size[1])}[kind]
            return im.transform(im.size, Image.AFFINE, coeffs, fillcolor=(128, 128, 128))
        return apply

    ops = [lambda im, m: ImageOps.autocontrast(im), enhance(ImageEnhance.Brightness), enhance(ImageEnhance.Color),
           enhance(ImageEnhance.Contrast), lambda im, m: ImageOps.equalize(im), lambda im, m: ImageOps.invert(im),
           enhance(ImageEnhance.Sharpness), lambda im, m: ImageOps.posterize(im, 8 - int(m * 4.999)),
           lambda im, m: ImageOps.solarize(im, int(256 * (1 - m))),
           affine("rotate"), affine("shear_x"), affine("shear_y"), affine("translate_x"), affine("translate_y")]
    for _ in range(num_ops):
        img = rng.choice(ops)(img, rng.random())
    arr = np.array(img)
    cy, cx = rng.randrange(32), rng.randrange(32)
    arr[max(0, cy - 8):cy + 8, max(0, cx - 8):cx + 8] = 128
    return Image.fromarray(arr)


def pil_pipeline(batch_uint8: np.ndarray, rng: random.Random) -> torch.Tensor:
    """Per image: to PIL, flip, pad-and-crop, RandAugment, Cutout, back to a standardised tensor."""
    out = []
    for chw in batch_uint8:
        img = Image.fromarray(chw.transpose(1, 2, 0))
        if rng.random() < 0.5:
            img = ImageOps.mirror(img)
        padded = np.pad(np.array(img), ((4, 4), (4, 4), (0, 0)), mode="reflect")
        y, x = rng.randrange(9), rng.randrange(9)
        img = pil_randaugment(Image.fromarray(padded[y:y + 32, x:x + 32]), rng)
        out.append(torch.from_numpy(np.array(img)).permute(2, 0, 1))
    return (torch.stack(out).float() / 255 - 0.5) / 0.25


def timed(fn, sync) -> float:
    """Seconds of one call, the device's queue drained before and after."""
    sync()
    started = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - started


def interleaved_rates(pipelines: dict, n_images: int, repeats: int, sync) -> dict:
    """Images per second of each pipeline: the median over ``repeats`` calls, the pipelines taking
    turns call by call (after one warm-up call each), so that a machine whose speed drifts (a
    shared host, frequency scaling) slows them all alike instead of whichever ran last."""
    seconds = {name: [] for name in pipelines}
    for fn in pipelines.values():
        fn()
    for _ in range(repeats):
        for name, fn in pipelines.items():
            seconds[name].append(timed(fn, sync))
    return {name: n_images / statistics.median(values) for name, values in seconds.items()}


def graphed_rate(views, x: torch.Tensor, repeats: int) -> float:
    """The static strong view captured once in a CUDA graph and replayed (the generator's state is
    registered with the graph, so every replay draws new ops); nan if capture fails."""
    g = torch.Generator(device=x.device).manual_seed(1)
    try:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                views.strong(x, g)  # warm-up outside the graph
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        graph.register_generator_state(g)
        with torch.cuda.graph(graph):
            views.strong(x, g)
    except Exception as error:  # report, do not hide: the row says why
        print(f"CUDA graph capture failed: {type(error).__name__}: {error}")
        return float("nan")
    return interleaved_rates({"graph": graph.replay}, len(x), repeats, torch.cuda.synchronize)["graph"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=448)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--data-path", default=None)
    parser.add_argument("--threads", type=int, help="torch threads (1: the per-core figure)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.data_path:
        from mentor.data import load_dataset

        images = load_dataset("cifar10", args.data_path).x_train[:args.batch]
    else:
        images = np.random.default_rng(0).integers(0, 256, (args.batch, 3, 32, 32), dtype=np.uint8)
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    x = torch.as_tensor(images, device=device)
    views = {static: ImageViews((0.5,) * 3, (0.25,) * 3, randaugment=RandAugment("cifar", 2, 0.5, static=static))
             for static in (True, False)}
    g = torch.Generator(device=device).manual_seed(0)
    rng = random.Random(0)
    pipelines = {
        f"mentor weak ({device.type})": lambda: views[True].weak(x, g),
        f"mentor strong, static sync-free round ({device.type})": lambda: views[True].strong(x, g),
        f"mentor strong, per-op round ({device.type})": lambda: views[False].strong(x, g),
        "PIL per-image strong (cpu, 1 process)": lambda: pil_pipeline(images, rng),
    }
    results = interleaved_rates(pipelines, len(x), args.repeats, sync)
    if device.type == "cuda":
        results["mentor strong, static round in a CUDA graph (cuda)"] = graphed_rate(views[True], x, args.repeats)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    print(f"command: python bench/augment.py --batch {args.batch} --repeats {args.repeats} --device {args.device}"
          f"{' --data-path ' + args.data_path if args.data_path else ''}{f' --threads {args.threads}' if args.threads else ''}")
    print(f"machine: {name}, torch threads {torch.get_num_threads()}, date {time.strftime('%Y-%m-%d')}")
    print("| pipeline | images / s |\n| --- | --- |")
    for k, v in results.items():
        print(f"| {k} | {v:,.0f} |")


if __name__ == "__main__":
    main()
