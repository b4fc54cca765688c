"""The README's pictures of "see why", made as a user makes them: `transfer-tf audit`, `train`, on real photos.

Runs, from the shell, on the sign-language digits (2,062 photos, 10 class
folders; Apache-2.0, in `../shared/data/`, or `--data DIR` for any folder):

    transfer-tf audit DATA_DIR --out WORK/audit --image-size 128
    transfer-tf train DATA_DIR --image-size 128 --head-epochs 3 --fine-tune-epochs 2 --out WORK/run

and copies the run's `interpretation/top_losses.png` and screenshots (headless
Chromium) of the two `report.html` pages to `benchmarks/results/see_why/`.

    python benchmarks/see_why_pictures.py
"""

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

from _data import SIGN_DIGITS

RESULTS = Path(__file__).parent / "results" / "see_why"


def transfer_tf(*arguments):
    command = [sys.executable, "-m", "transfer_tf.cli", *map(str, arguments)]
    print("$ transfer-tf " + " ".join(map(str, arguments)), flush=True)
    tick = time.perf_counter()
    subprocess.run(command, check=True)
    print(f"({time.perf_counter() - tick:.0f} s)", flush=True)


def screenshot(page, target, height=1500):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        print(f"No Chromium: no screenshot of {page}.")
        return
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--window-size=1100,{height}", f"--screenshot={target}", Path(page).resolve().as_uri()],
                   check=True, capture_output=True, timeout=120)
    print(f"Wrote {target}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(SIGN_DIGITS))
    parser.add_argument("--work", default="/tmp/transfer_tf_see_why")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    work, out = Path(args.work), Path(args.out)
    shutil.rmtree(work, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    transfer_tf("audit", args.data, "--out", work / "audit", "--image-size", 128)
    transfer_tf("train", args.data, "--image-size", 128, "--head-epochs", 3, "--fine-tune-epochs", 2,
                "--out", work / "run")
    shutil.copyfile(work / "run" / "interpretation" / "top_losses.png", out / "top_losses.png")
    print(f"Wrote {out / 'top_losses.png'}")
    screenshot(work / "audit" / "report.html", out / "audit_page.png")
    screenshot(work / "run" / "report.html", out / "run_report_page.png", height=2400)


if __name__ == "__main__":
    main()
